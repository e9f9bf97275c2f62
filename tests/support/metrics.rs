//! The server's `/metrics` page as an operator's scraper reads it: the text, one sample's
//! value, one series' line, and waiting for a gauge to reach a value.

use std::time::Duration;

use super::http::get;

/// The server's `/metrics` page.
pub fn text(url: &str) -> String {
    String::from_utf8(get(&format!("{url}/metrics"), &[]).body).unwrap()
}

/// The value of the first sample in `text` whose line starts with `series` (the name, and the
/// label set exactly as the exporter prints it), if any.
pub fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// The line of metric `name` (not of a longer name it prefixes) labelled `org`, if any.
pub fn line(text: &str, name: &str, org: &str) -> Option<String> {
    text.lines()
        .find(|l| {
            l.starts_with(name)
                && l.contains(&format!("org=\"{org}\""))
                && !l.starts_with(&format!("{name}_"))
        })
        .map(str::to_owned)
}

/// Waits until the gauge `series` of the server at `url` reaches at least `value` (60 s at
/// most).
pub fn wait_for_gauge(url: &str, series: &str, at_least: f64) {
    super::wait_until(
        Duration::from_secs(60),
        &format!("{series} to reach {at_least}"),
        || value(&text(url), series).unwrap_or(0.0) >= at_least,
    );
}
