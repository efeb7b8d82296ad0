//! Agent avatars: a deterministic generated default (an SVG identicon of the agent's id) until
//! the owner uploads a PNG, JPEG or WebP image.
//!
//! Uploads are validated by their magic bytes (the declared content type is ignored) and by
//! the dimensions their header declares (1 to [`MAX_AVATAR_SIDE`] pixels a side, so a 20-byte
//! "image" claiming 4 billion pixels — a decompression bomb for every client that shows it — is
//! refused), capped in size, stored in the `avatar` table keyed by agent id, and bump the agent's `avatar_version`
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

/// Largest width or height (pixels) an avatar image may declare.
pub const MAX_AVATAR_SIDE: u32 = 4096;

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

/// Check an upload: not empty, not too large, a PNG, JPEG or WebP image whose header declares
/// sensible dimensions.
pub fn validate_upload(data: &[u8]) -> Result<&'static str, FleetError> {
    if data.is_empty() {
        return Err(FleetError::invalid("avatar", "the image is empty"));
    }
    if data.len() > MAX_AVATAR_BYTES {
        return Err(FleetError::TooLarge(format!(
            "avatar images are limited to {MAX_AVATAR_BYTES} bytes"
        )));
    }
    let kind = sniff_image(data).ok_or_else(|| {
        FleetError::invalid("avatar", "the image is not a PNG, JPEG or WebP file")
    })?;
    match image_dimensions(kind, data) {
        Some((w, h))
            if (1..=MAX_AVATAR_SIDE).contains(&w) && (1..=MAX_AVATAR_SIDE).contains(&h) =>
        {
            Ok(kind)
        }
        Some((w, h)) => Err(FleetError::invalid(
            "avatar",
            format!("the image is {w}×{h} pixels; at most {MAX_AVATAR_SIDE} a side is accepted"),
        )),
        None => Err(FleetError::invalid(
            "avatar",
            "the image header is damaged or incomplete",
        )),
    }
}

fn be16(data: &[u8], at: usize) -> Option<u32> {
    let b = data.get(at..at + 2)?;
    Some(u32::from(u16::from_be_bytes([b[0], b[1]])))
}

fn le_bytes(data: &[u8], at: usize, n: usize) -> Option<u32> {
    let b = data.get(at..at + n)?;
    Some(
        b.iter()
            .rev()
            .fold(0u32, |acc, &x| (acc << 8) | u32::from(x)),
    )
}

/// Width and height as the image's header declares them (`kind` from [`sniff_image`]), or
/// `None` if the header is not there. Reads the header only; nothing is decoded.
pub fn image_dimensions(kind: &str, data: &[u8]) -> Option<(u32, u32)> {
    match kind {
        // Signature, then the IHDR chunk: length, "IHDR", width, height (big-endian).
        "image/png" => {
            if data.get(12..16)? != b"IHDR" {
                return None;
            }
            let w = data.get(16..20)?;
            let h = data.get(20..24)?;
            Some((
                u32::from_be_bytes([w[0], w[1], w[2], w[3]]),
                u32::from_be_bytes([h[0], h[1], h[2], h[3]]),
            ))
        }
        // Walk the markers to the first start-of-frame (SOF0..SOF15 but DHT, JPG, DAC).
        "image/jpeg" => {
            let mut at = 2;
            loop {
                if *data.get(at)? != 0xFF {
                    return None;
                }
                while *data.get(at)? == 0xFF {
                    at += 1;
                }
                let marker = *data.get(at)?;
                at += 1;
                match marker {
                    0x01 | 0xD0..=0xD8 => continue,
                    0xD9 | 0xDA => return None,
                    0xC0..=0xCF if !matches!(marker, 0xC4 | 0xC8 | 0xCC) => {
                        let height = be16(data, at + 3)?;
                        let width = be16(data, at + 5)?;
                        return Some((width, height));
                    }
                    _ => {
                        let length = be16(data, at)? as usize;
                        if length < 2 {
                            return None;
                        }
                        at += length;
                    }
                }
            }
        }
        // RIFF container: a lossy (VP8), lossless (VP8L) or extended (VP8X) first chunk.
        "image/webp" => match data.get(12..16)? {
            b"VP8 " => {
                if data.get(23..26)? != [0x9D, 0x01, 0x2A] {
                    return None;
                }
                Some((
                    le_bytes(data, 26, 2)? & 0x3FFF,
                    le_bytes(data, 28, 2)? & 0x3FFF,
                ))
            }
            b"VP8L" => {
                if *data.get(20)? != 0x2F {
                    return None;
                }
                let bits = le_bytes(data, 21, 4)?;
                Some(((bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1))
            }
            b"VP8X" => Some((le_bytes(data, 24, 3)? + 1, le_bytes(data, 27, 3)? + 1)),
            _ => None,
        },
        _ => None,
    }
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
        let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0";
        assert_eq!(validate_upload(png).unwrap(), "image/png");
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
    fn declared_dimensions_are_bounded() {
        let png = |w: u32, h: u32| {
            let mut d = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
            d.extend_from_slice(&w.to_be_bytes());
            d.extend_from_slice(&h.to_be_bytes());
            d
        };
        assert!(validate_upload(&png(64, 64)).is_ok());
        assert!(validate_upload(&png(u32::MAX, u32::MAX)).is_err());
        assert!(validate_upload(&png(0, 10)).is_err());
        assert!(validate_upload(b"\x89PNG\r\n\x1a\n").is_err());
        // JPEG: SOI, an APP0 segment, then SOF0 with height 32 and width 48.
        let mut jpeg = vec![0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x04, 0x00, 0x00];
        jpeg.extend_from_slice(&[0xFF, 0xC0, 0x00, 0x11, 0x08, 0x00, 0x20, 0x00, 0x30, 0x03]);
        assert_eq!(image_dimensions("image/jpeg", &jpeg), Some((48, 32)));
        assert!(validate_upload(&jpeg).is_ok());
        assert!(validate_upload(&[0xFF, 0xD8, 0xFF, 0xE0, 0x00]).is_err());
        // WebP (VP8X): canvas 100×50.
        let mut webp = b"RIFF\0\0\0\0WEBPVP8X\x0a\0\0\0\0\0\0\0".to_vec();
        webp.extend_from_slice(&[99, 0, 0, 49, 0, 0]);
        assert_eq!(image_dimensions("image/webp", &webp), Some((100, 50)));
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
