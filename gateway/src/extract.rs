//! Request extraction with sck's error format: a malformed, mistyped or oversized JSON body is
//! answered with a problem+json `invalid_json` (or `payload_too_large`) naming the problem,
//! never with axum's plain-text rejection; the one `Authorization: Bearer` parser, whose
//! refusal each credential's extractor words for its own kind of credential.
//!
//! Invariant: every POST handler takes a body extractor. A handler without one accepts any
//! body, so a garbage request acts like a valid one; routes whose body is optional take
//! [`OptionalJsonBody`], and routes without parameters take it with [`NoParameters`].

use axum::body::Bytes;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::api_error::ApiError;

/// Why a request carries no bearer credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BearerRefusal {
    /// No `Authorization` header.
    Missing,
    /// A header value that is not text, or has no space after a scheme.
    Malformed,
    /// Another scheme than `Bearer` (case-insensitive), or an empty credential.
    NotBearer,
}

/// `Authorization: Bearer <credential>` → the credential, trimmed.
pub fn bearer_credential(parts: &axum::http::request::Parts) -> Result<&str, BearerRefusal> {
    let value = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)
        .ok_or(BearerRefusal::Missing)?;
    let text = value.to_str().map_err(|_| BearerRefusal::Malformed)?;
    let (scheme, credential) = text.split_once(' ').ok_or(BearerRefusal::Malformed)?;
    if !scheme.eq_ignore_ascii_case("bearer") || credential.trim().is_empty() {
        return Err(BearerRefusal::NotBearer);
    }
    Ok(credential.trim())
}

/// A JSON request body of type `T`: a JSON object (see [`Object`]).
#[derive(Debug, Clone)]
pub struct JsonBody<T>(pub T);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<Object<T>>::from_request(req, state).await {
            Ok(axum::Json(Object(value))) => Ok(JsonBody(value)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

/// An optional JSON body of type `T`: `value` is `None` for no body or `null`, else the body
/// parsed as a `T` like [`JsonBody`] (but without needing `Content-Type: application/json`);
/// anything else is `400 invalid_json`. `bytes` is the body as sent.
#[derive(Debug, Clone)]
pub struct OptionalJsonBody<T> {
    pub value: Option<T>,
    pub bytes: Bytes,
}

impl<S, T> FromRequest<S> for OptionalJsonBody<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| json_rejection(e.into()))?;
        let value = if bytes.is_empty() {
            None
        } else {
            let axum::Json(value) =
                axum::Json::<Option<Object<T>>>::from_bytes(&bytes).map_err(json_rejection)?;
            value.map(|Object(value)| value)
        };
        Ok(OptionalJsonBody { value, bytes })
    }
}

/// The body of a route that takes no parameters: nothing, `null` or `{}`.
#[derive(Debug, Clone, Copy, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NoParameters {}

/// A `T` that must be written as a JSON object: serde also reads a struct from an array of its
/// field values (`["acme"]` for `{"organizationId": "acme"}`), which no route documents.
struct Object<T>(T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Object<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor<T>(std::marker::PhantomData<T>);

        impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for ObjectVisitor<T> {
            type Value = T;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(serde::de::value::MapAccessDeserializer::new(map))
            }
        }

        deserializer
            .deserialize_map(ObjectVisitor(std::marker::PhantomData))
            .map(Object)
    }
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    let detail = rejection.body_text();
    match rejection {
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "expected Content-Type: application/json",
        ),
        JsonRejection::BytesRejection(_) if detail.to_lowercase().contains("length limit") => {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", detail)
        }
        _ => ApiError::bad_request("invalid_json", detail),
    }
}

/// Query parameters of type `T`, rejected as problem+json `invalid_request`.
#[derive(Debug, Clone)]
pub struct QueryParams<T>(pub T);

impl<S, T> axum::extract::FromRequestParts<S> for QueryParams<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(value)| QueryParams(value))
            .map_err(|rejection| ApiError::bad_request("invalid_request", rejection.body_text()))
    }
}
