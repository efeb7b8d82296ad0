//! Agent avatars: a deterministic generated default (an SVG identicon of the agent's id) until
//! the owner uploads a PNG, JPEG or WebP image.
//!
//! Uploads are validated by their magic bytes (the declared content type is ignored), capped in
//! size, stored in the `avatar` table keyed by agent id, and bump the agent's `avatar_version`
//! through its actor, so `avatar_url` (`?v=<version>`) changes and caches refresh.

use bytes::Bytes;
use sha2::{Digest, Sha256};

use crate::access::Action;
use crate::agent::messages::SetAvatar;
use crate::error::FleetError;
use crate::fleet::Fleet;
use crate::model::{AgentId, Principal};

/// Largest avatar image accepted.
pub const MAX_AVATAR_BYTES: usize = 512 * 1024;

/// An avatar ready to serve.
#[derive(Debug, Clone)]
pub struct Avatar {
    pub content_type: &'static str,
    pub data: Bytes,
    /// 0 for the generated default.
    pub version: i64,
    /// Strong validator: changes whenever the image does.
    pub etag: String,
}

/// The image type of `data`, judged by its magic bytes.
pub fn sniff_image(data: &[u8]) -> Option<&'static str> {
    if data.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if data.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("image/jpeg")
    } else if data.len() >= 12 && &data[..4] == b"RIFF" && &data[8..12] == b"WEBP" {
        Some("image/webp")
    } else {
        None
    }
}

/// Check an upload: not empty, not too large, a PNG, JPEG or WebP image.
pub fn validate_upload(data: &[u8]) -> Result<&'static str, FleetError> {
    if data.is_empty() {
        return Err(FleetError::invalid("avatar", "the image is empty"));
    }
    if data.len() > MAX_AVATAR_BYTES {
        return Err(FleetError::TooLarge(format!(
            "avatar images are limited to {MAX_AVATAR_BYTES} bytes"
        )));
    }
    sniff_image(data)
        .ok_or_else(|| FleetError::invalid("avatar", "the image is not a PNG, JPEG or WebP file"))
}

/// A 5×5 mirrored identicon of the agent id, as SVG: the same id always draws the same picture.
pub fn identicon(id: AgentId) -> String {
    let hash = Sha256::digest(id.0.as_bytes());
    let hue = u16::from_be_bytes([hash[0], hash[1]]) % 360;
    let mut cells = String::new();
    for row in 0..5 {
        for col in 0..3 {
            let bit = hash[2 + row * 3 + col] & 1 == 1;
            if bit {
                for x in [col, 4 - col] {
                    cells.push_str(&format!(
                        r#"<rect x="{}" y="{}" width="10" height="10"/>"#,
                        5 + x * 10,
                        5 + row * 10
                    ));
                    if col == 2 {
                        break;
                    }
                }
            }
        }
    }
    format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 60 60" width="120" height="120"><rect width="60" height="60" fill="hsl({hue},30%,94%)"/><g fill="hsl({hue},55%,45%)">{cells}</g></svg>"#
    )
}

impl Fleet {
    /// The agent's avatar (readable by anyone who can see the agent).
    pub async fn avatar(&self, who: &Principal, name: &str) -> Result<Avatar, FleetError> {
        let visible = self.agent(who, name, Action::Read)?;
        let record = &visible.view.record;
        let version = record.avatar_version;
        if version > 0
            && let Some((content_type, data)) = self.inner.store.load_avatar(record.id).await?
        {
            return Ok(Avatar {
                content_type: sniff_image(&data).unwrap_or(match content_type.as_str() {
                    "image/png" => "image/png",
                    "image/jpeg" => "image/jpeg",
                    _ => "image/webp",
                }),
                data,
                version,
                etag: format!("\"{}-{version}\"", record.id),
            });
        }
        Ok(Avatar {
            content_type: "image/svg+xml",
            data: Bytes::from(identicon(record.id)),
            version: 0,
            etag: format!("\"{}-0\"", record.id),
        })
    }

    /// Replace the agent's avatar (owner or admin). Returns the new version.
    pub async fn set_avatar(
        &self,
        who: &Principal,
        name: &str,
        data: Bytes,
    ) -> Result<i64, FleetError> {
        let content_type = validate_upload(&data)?;
        let addr = self.addr_for(who, name, Action::Manage)?;
        self.ask(
            name,
            &addr,
            SetAvatar {
                content_type: content_type.to_string(),
                data,
            },
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_are_recognised_by_magic_bytes() {
        assert_eq!(sniff_image(b"\x89PNG\r\n\x1a\nrest"), Some("image/png"));
        assert_eq!(sniff_image(&[0xFF, 0xD8, 0xFF, 0xE0]), Some("image/jpeg"));
        assert_eq!(sniff_image(b"RIFF\0\0\0\0WEBPVP8 "), Some("image/webp"));
        assert_eq!(sniff_image(b"GIF89a"), None);
        assert_eq!(sniff_image(b"<svg/>"), None);
        assert!(validate_upload(&[]).is_err());
        let mut big = b"\x89PNG\r\n\x1a\n".to_vec();
        big.resize(MAX_AVATAR_BYTES + 1, 0);
        assert!(matches!(
            validate_upload(&big),
            Err(FleetError::TooLarge(_))
        ));
    }

    #[test]
    fn identicons_are_deterministic_and_differ() {
        let a = AgentId::new();
        let b = AgentId::new();
        assert_eq!(identicon(a), identicon(a));
        assert_ne!(identicon(a), identicon(b));
        assert!(identicon(a).starts_with("<svg"));
    }
}
