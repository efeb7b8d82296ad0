//! [`JsonObject`]: the body extractor of every route that takes a JSON object.
//!
//! It behaves like `web::Json<T>` (same size limit, same error answers: 413, 415, 400 for
//! malformed JSON, 422 naming the field) with one difference: only a JSON *object* is accepted.
//! serde reads a struct from a JSON array too, field by field in declaration order, so with
//! `web::Json` a body of `[true]` is taken as `{"enabled": true}` and `{"config": []}` as a
//! config with every field at its default — inputs no client means, which silently changed
//! settings. Nested structs get the same rule through [`object_only`].

use std::ops::Deref;

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, web};
use futures_util::future::LocalBoxFuture;
use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use crate::error::ApiError;

/// A request body that must be a JSON object, deserialized into `T`.
#[derive(Debug)]
pub struct JsonObject<T>(pub T);

impl<T> JsonObject<T> {
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> Deref for JsonObject<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for JsonObject<T> {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let json = web::Json::<Value>::from_request(req, payload);
        Box::pin(async move {
            let value = json.await?.into_inner();
            if !value.is_object() {
                return Err(ApiError::invalid("body", "must be a JSON object").into());
            }
            serde_json::from_value(value)
                .map(JsonObject)
                .map_err(|e| ApiError::invalid("body", e).into())
        })
    }
}

/// `#[serde(default, deserialize_with = "object_only")]` on an optional nested struct: `null`
/// or absent is `None`, an object is parsed, anything else (an array in particular) is refused.
pub fn object_only<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned,
{
    match Value::deserialize(deserializer)? {
        Value::Null => Ok(None),
        value @ Value::Object(_) => serde_json::from_value(value)
            .map(Some)
            .map_err(D::Error::custom),
        other => Err(D::Error::custom(format!(
            "expected an object, found {}",
            match other {
                Value::Array(_) => "an array",
                Value::String(_) => "a string",
                Value::Number(_) => "a number",
                _ => "a boolean",
            }
        ))),
    }
}
