//! Avatar uploads (`actors/src/avatar.rs`): the magic-byte sniffing and the header reading that
//! bounds an image's declared dimensions. Never a panic; whatever is accepted declares 1 to
//! `MAX_AVATAR_SIDE` pixels a side.
#![no_main]

use flotilla_actors::avatar::{self, MAX_AVATAR_SIDE};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    if let Ok(kind) = avatar::validate_upload(input) {
        let (w, h) = avatar::image_dimensions(kind, input).expect("accepted without dimensions");
        assert!((1..=MAX_AVATAR_SIDE).contains(&w) && (1..=MAX_AVATAR_SIDE).contains(&h));
    }
});
