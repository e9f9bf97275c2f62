//! The database behind a deployment: SQLite in its data directory, or a brand-new PostgreSQL
//! database on the server `scripts/with-postgres.sh` starts (`SCK_TEST_DATABASE_URL`). A
//! [`Deployment`] is one data directory and one database that replicas share; [`backends`]
//! gives one per backend the suite has, so a test runs on SQLite and, when PostgreSQL is
//! there, on PostgreSQL too. Direct SQL on a SQLite file is for what only a crash, a disk fault
//! or an operator's hand leaves behind.

use std::path::Path;

use super::server::Server;

/// The database URL sck uses for SQLite in `data_dir`.
pub fn sqlite_url(data_dir: &Path) -> String {
    data_dir.join("sck.db").display().to_string()
}

/// A PostgreSQL URL for a brand-new database, or `None` (with a note) when the suite runs
/// without PostgreSQL.
pub fn fresh_postgres_database() -> Option<String> {
    let Ok(base) = std::env::var("SCK_TEST_DATABASE_URL") else {
        eprintln!("skipped: SCK_TEST_DATABASE_URL not set (make test provides it)");
        return None;
    };
    let name = format!("sck_e2e_{}", uuid::Uuid::new_v4().simple());
    runtime().block_on(async {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&base).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .unwrap();
    });
    let (prefix, _) = base.rsplit_once('/').unwrap();
    Some(format!("{prefix}/{name}"))
}

/// One deployment's shared state: a data directory (keys; deleted when dropped) and a
/// database, SQLite in that directory or PostgreSQL.
pub struct Deployment {
    pub database_url: String,
    dir: tempfile::TempDir,
}

impl Deployment {
    /// A deployment on SQLite.
    pub fn sqlite() -> Deployment {
        let dir = tempfile::tempdir().unwrap();
        Deployment {
            database_url: sqlite_url(dir.path()),
            dir,
        }
    }

    /// A deployment on a fresh PostgreSQL database, when the suite has PostgreSQL.
    pub fn postgres() -> Option<Deployment> {
        Some(Deployment::on(fresh_postgres_database()?))
    }

    /// A deployment on `database_url` (a PostgreSQL server a test runs itself).
    pub fn on(database_url: String) -> Deployment {
        Deployment {
            database_url,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// Starts a replica of this deployment (the first one bootstraps it).
    pub fn replica(&self) -> Server {
        self.replica_with_env(&[])
    }

    /// Starts a replica with extra environment variables.
    pub fn replica_with_env(&self, env: &[(&str, &str)]) -> Server {
        Server::start_on_with_env(self.data_dir(), &self.database_url, env)
    }
}

/// A deployment on SQLite, then one on a fresh PostgreSQL database when the suite has it.
pub fn backends() -> impl Iterator<Item = Deployment> {
    std::iter::once(Deployment::sqlite()).chain(Deployment::postgres())
}

/// Runs `test` against a fresh server on each backend in turn.
pub fn on_each_backend(test: impl Fn(&Server)) {
    for deployment in backends() {
        test(&deployment.replica());
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

async fn sqlite(database_url: &str) -> sqlx::SqliteConnection {
    use sqlx::Connection;
    sqlx::SqliteConnection::connect(&format!("sqlite:{database_url}"))
        .await
        .unwrap()
}

/// Runs `sql` with `binds` ($1, $2, ...) on the SQLite database at `database_url`; how many
/// rows it changed, or the database's refusal.
pub fn sqlite_execute(
    database_url: &str,
    sql: &'static str,
    binds: &[&str],
) -> Result<u64, sqlx::Error> {
    runtime().block_on(async {
        let mut conn = sqlite(database_url).await;
        let mut query = sqlx::query(sql);
        for bind in binds {
            query = query.bind(*bind);
        }
        query.execute(&mut conn).await.map(|r| r.rows_affected())
    })
}

/// The first column of the first row `sql` returns on the SQLite database at `database_url`.
pub fn sqlite_text(database_url: &str, sql: &'static str) -> String {
    runtime().block_on(async {
        use sqlx::Row;
        let mut conn = sqlite(database_url).await;
        sqlx::query(sql).fetch_one(&mut conn).await.unwrap().get(0)
    })
}
