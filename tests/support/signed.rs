//! X-SCK signed upstream calls as a pinned caller makes them: an identity pin with an HMAC
//! key, and a [`Call`] signed with HMAC-SHA256 or Ed25519 over sck's own canonical string
//! (`sck_wire::xsck`, so the tests sign exactly what the gateway verifies). Every part of a
//! call can be changed apart from what was signed, for the "must fail" cases. And the other
//! direction: [`assert_gateway_signed`] checks the signature the gateway puts on what it
//! forwards, as an upstream received it.

use serde_json::json;

use sck_wire::xsck::{self as canonical, Scheme, SignedRequest};

use super::http::{post_json, request, Reply, API};

/// The verification route signed calls go to by default.
pub const VERIFY: &str = "/api/v1/enforcement/verify";

/// Pins `ans_id` to `org` with a new HMAC key; (secret, key id).
pub fn pin_hmac(url: &str, key: &str, org: &str, ans_id: &str) -> (String, String) {
    let pin = post_json(
        &format!("{url}{API}/identities"),
        Some(key),
        &json!({"organizationId": org, "ansId": ans_id, "scheme": "hmac-sha256"}),
    )
    .expect(201);
    (
        pin["key"]["secret"].as_str().unwrap().to_owned(),
        pin["key"]["keyId"].as_str().unwrap().to_owned(),
    )
}

/// A caller's signing key.
pub enum Key {
    Hmac(String),
    Ed(ed25519_dalek::SigningKey),
}

/// What to sign and how to send it (each field can be tampered with separately).
pub struct Call {
    /// The method signed (`POST` unless changed; [`Call::send`] always posts).
    pub method: String,
    /// The authority signed (the gateway's `public_url`'s).
    pub authority: String,
    pub path_and_query: String,
    /// What is signed instead of `path_and_query`, if set.
    pub signed_path_and_query: Option<String>,
    pub body: Vec<u8>,
    /// What is signed instead of `body`, if set.
    pub signed_body: Option<Vec<u8>>,
    pub timestamp: String,
    pub nonce: Option<String>,
    pub ans_id: String,
    pub org: String,
    /// What is signed instead of `org`, if set.
    pub signed_org: Option<String>,
    /// Headers sent after the X-SCK ones.
    pub extra: Vec<(String, String)>,
    /// An X-SCK header left out.
    pub drop: Option<&'static str>,
}

impl Call {
    /// A call of `ans_id` for `org` posting `body` to `/verify` of the gateway whose public
    /// URL is `public_url`, timestamped now with a fresh nonce.
    pub fn new(public_url: &str, ans_id: &str, org: &str, body: Vec<u8>) -> Call {
        Call {
            method: "POST".into(),
            authority: canonical::authority_of(public_url),
            path_and_query: VERIFY.into(),
            signed_path_and_query: None,
            body,
            signed_body: None,
            timestamp: super::unix_now().to_string(),
            nonce: Some(uuid::Uuid::new_v4().simple().to_string()),
            ans_id: ans_id.into(),
            org: org.into(),
            signed_org: None,
            extra: Vec::new(),
            drop: None,
        }
    }

    /// The X-SCK headers of this call signed with `key` (and `extra`).
    pub fn headers(&self, key: &Key) -> Vec<(String, String)> {
        let signed_target = self
            .signed_path_and_query
            .as_deref()
            .unwrap_or(&self.path_and_query);
        let (path, query) = signed_target.split_once('?').unwrap_or((signed_target, ""));
        let request = SignedRequest {
            method: &self.method,
            authority: &self.authority,
            path,
            query,
            body: self.signed_body.as_deref().unwrap_or(&self.body),
        };
        let scheme = match key {
            Key::Hmac(_) => Scheme::HmacSha256,
            Key::Ed(_) => Scheme::Ed25519,
        };
        let message = canonical::string_to_sign(
            scheme,
            &request,
            &self.timestamp,
            self.nonce.as_deref(),
            &self.ans_id,
            self.signed_org.as_deref().unwrap_or(&self.org),
        );
        let signature = match key {
            Key::Hmac(secret) => canonical::sign_hmac(secret.as_bytes(), &message),
            Key::Ed(k) => canonical::sign_ed25519(k, &message),
        };
        let mut headers = vec![
            ("X-SCK-Signature".into(), signature.header_value()),
            ("X-SCK-Timestamp".into(), self.timestamp.clone()),
            ("X-SCK-ANS-ID".into(), self.ans_id.clone()),
            ("X-SCK-Organization".into(), self.org.clone()),
        ];
        if let Some(n) = &self.nonce {
            headers.push(("X-SCK-Nonce".into(), n.clone()));
        }
        headers.retain(|(n, _): &(String, String)| Some(n.as_str()) != self.drop);
        headers.extend(self.extra.iter().cloned());
        headers
    }

    /// Sends this call, signed with `key`, to the server at `base`.
    pub fn send(&self, base: &str, key: &Key) -> Reply {
        send(base, &self.path_and_query, &self.headers(key), &self.body)
    }
}

/// POSTs `body` as JSON to `base` + `target` with `headers`.
pub fn send(base: &str, target: &str, headers: &[(String, String)], body: &[u8]) -> Reply {
    let mut all = vec![("Content-Type", "application/json")];
    all.extend(headers.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    request("POST", &format!("{base}{target}"), &all, body)
}

/// Checks the gateway's X-SCK signature on a request an upstream recorded as
/// `{method, path, query, body, headers: {lower-case name: value}}`: it verifies with the
/// public key of `signer` (`GET /gateway/signer`) over what the upstream received, as the
/// gateway's ANS ID, for the default org.
pub fn assert_gateway_signed(recorded: &serde_json::Value, signer: &serde_json::Value) {
    use base64::Engine as _;
    use canonical::{KeyMaterial, PinnedKey};
    let h = &recorded["headers"];
    let header = |name: &str| {
        h[name]
            .as_str()
            .unwrap_or_else(|| panic!("{name} in {recorded}"))
    };
    let request = SignedRequest {
        method: recorded["method"].as_str().unwrap(),
        authority: header("host"),
        path: recorded["path"].as_str().unwrap(),
        query: recorded["query"].as_str().unwrap(),
        body: recorded["body"].as_str().unwrap().as_bytes(),
    };
    let signature = canonical::Signature::parse(header("x-sck-signature")).unwrap();
    let message = canonical::string_to_sign(
        signature.scheme(),
        &request,
        header("x-sck-timestamp"),
        Some(header("x-sck-nonce")),
        header("x-sck-ans-id"),
        header("x-sck-organization"),
    );
    let public: [u8; 32] = base64::engine::general_purpose::STANDARD
        .decode(signer["publicKey"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    let key = PinnedKey {
        key_id: signer["keyId"].as_str().unwrap().to_owned(),
        material: KeyMaterial::Ed25519(ed25519_dalek::VerifyingKey::from_bytes(&public).unwrap()),
    };
    assert!(
        canonical::verify_signature(
            message.as_bytes(),
            &signature,
            &[key],
            Some(header("x-sck-key-id"))
        )
        .is_ok(),
        "the X-SCK signature verifies: {recorded}"
    );
    assert_eq!(header("x-sck-ans-id"), signer["ansId"].as_str().unwrap());
    assert_eq!(header("x-sck-organization"), "default");
}
