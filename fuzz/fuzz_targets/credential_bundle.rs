//! Credential bundle import (`actors/src/credentials/bundle.rs`): the armored age file and the
//! files inside it, as `POST .../credentials/import` receives them. Never a panic; a passphrase
//! bundle's scrypt work is capped at 2^10 so the fuzzer spends its time on parsing, not on key
//! derivation (the server's own cap, 2^18, is tested in the crate's unit tests).
//!
//! The first byte picks the key the import is tried with: this server's, a passphrase, or
//! another age identity; the rest is the bundle.
#![no_main]

use std::sync::OnceLock;

use age::secrecy::SecretString;
use age::x25519;
use flotilla_actors::credentials::ImportKey;
use flotilla_actors::credentials::bundle;
use libfuzzer_sys::fuzz_target;

const FUZZ_WORK_FACTOR: u8 = 10;

fn server() -> &'static x25519::Identity {
    static SERVER: OnceLock<x25519::Identity> = OnceLock::new();
    SERVER.get_or_init(x25519::Identity::generate)
}

fuzz_target!(|input: &[u8]| {
    let Some((&selector, armored)) = input.split_first() else {
        return;
    };
    let key = match selector % 3 {
        0 => ImportKey::Server,
        1 => ImportKey::Passphrase(SecretString::from("fuzzing passphrase".to_string())),
        _ => ImportKey::Identity(SecretString::from(x25519::Identity::generate().to_string())),
    };
    if let Ok(files) = bundle::open_files(armored, key, server(), FUZZ_WORK_FACTOR) {
        // Whatever opens holds valid, bounded files.
        assert!(files.len() <= flotilla_actors::credentials::MAX_FILES);
        assert!(files.total_bytes() <= flotilla_actors::credentials::MAX_TOTAL_BYTES);
    }
});
