//! OAuth 2 token requests as they arrive: the form body (RFC 6749 §3.2, Appendix B) and HTTP
//! Basic client credentials (RFC 6749 §2.3.1).
//!
//! Invariants: a body is only ever read as `application/x-www-form-urlencoded` (a JSON body is
//! refused, never guessed at); a parameter named twice is refused (§3.2: "MUST NOT be included
//! more than once"), whatever its values; a parameter without a value counts as omitted (§3.1).
//! Decoding is `form_urlencoded`'s and `percent-encoding`'s; every refusal is a
//! [`FormRefused`] whose `code()` is the RFC 6749 error `invalid_request`.

use std::collections::BTreeMap;

use base64::Engine as _;

/// A refused token request body or `Authorization` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormRefused {
    /// Safe to show the client: names the rule, never a credential.
    pub detail: String,
}

impl FormRefused {
    fn new(detail: impl Into<String>) -> FormRefused {
        FormRefused {
            detail: detail.into(),
        }
    }

    /// The RFC 6749 §5.2 error code.
    pub fn code(&self) -> &'static str {
        "invalid_request"
    }
}

/// The parameters of a token request, each at most once; empty values left out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenForm {
    params: BTreeMap<String, String>,
}

impl TokenForm {
    /// Parses a request body with its `Content-Type` (media type parameters are ignored).
    pub fn parse(content_type: Option<&str>, body: &[u8]) -> Result<TokenForm, FormRefused> {
        let media_type = content_type
            .and_then(|value| value.split(';').next())
            .map(|value| value.trim().to_ascii_lowercase());
        if media_type.as_deref() != Some("application/x-www-form-urlencoded") {
            return Err(FormRefused::new(
                "the token endpoint takes an application/x-www-form-urlencoded body (RFC 6749 §4.4.2)",
            ));
        }
        let mut params = BTreeMap::new();
        let mut seen = std::collections::BTreeSet::new();
        for (name, value) in form_urlencoded::parse(body) {
            if !seen.insert(name.to_string()) {
                return Err(FormRefused::new(format!(
                    "parameter {name:?} is given more than once (RFC 6749 §3.2)"
                )));
            }
            if !value.is_empty() {
                params.insert(name.into_owned(), value.into_owned());
            }
        }
        Ok(TokenForm { params })
    }

    /// The value of `name`, if given.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }

    /// The space-separated list of `name` (RFC 6749 §3.3 `scope`), empty if not given.
    pub fn list(&self, name: &str) -> Vec<String> {
        self.get(name)
            .map(|value| {
                value
                    .split(' ')
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Client credentials from an `Authorization: Basic` header value (RFC 7617, with RFC 6749
/// §2.3.1's form-urlencoding of the id and secret). `None` for another scheme.
pub fn basic_credentials(header: &str) -> Option<Result<(String, String), FormRefused>> {
    let (scheme, encoded) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let malformed = || FormRefused::new("malformed Basic credentials");
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| malformed());
    Some(decoded.and_then(|bytes| {
        let text = String::from_utf8(bytes).map_err(|_| malformed())?;
        let (id, secret) = text.split_once(':').ok_or_else(malformed)?;
        Ok((form_decode(id)?, form_decode(secret)?))
    }))
}

fn form_decode(text: &str) -> Result<String, FormRefused> {
    percent_encoding::percent_decode_str(&text.replace('+', " "))
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| FormRefused::new("malformed Basic credentials"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FORM: Option<&str> = Some("application/x-www-form-urlencoded; charset=UTF-8");

    #[test]
    fn parses_a_form_and_drops_empty_values() {
        let form = TokenForm::parse(
            FORM,
            b"grant_type=client_credentials&scope=a+b%3Ac&resource=",
        )
        .unwrap();
        assert_eq!(form.get("grant_type"), Some("client_credentials"));
        assert_eq!(form.list("scope"), ["a", "b:c"]);
        assert_eq!(form.get("resource"), None);
    }

    #[test]
    fn refuses_json_and_duplicates() {
        assert!(TokenForm::parse(Some("application/json"), b"{}").is_err());
        assert!(TokenForm::parse(None, b"grant_type=x").is_err());
        let twice = TokenForm::parse(FORM, b"scope=a&scope=").unwrap_err();
        assert!(twice.detail.contains("more than once"), "{twice:?}");
    }

    #[test]
    fn basic_credentials_are_form_decoded() {
        let header = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("my%20client:s%3Acret+x")
        );
        assert_eq!(
            basic_credentials(&header).unwrap().unwrap(),
            ("my client".to_owned(), "s:cret x".to_owned())
        );
        assert!(basic_credentials("Bearer abc").is_none());
        assert!(basic_credentials("Basic !!!").unwrap().is_err());
        let no_colon = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("x")
        );
        assert!(basic_credentials(&no_colon).unwrap().is_err());
    }
}
