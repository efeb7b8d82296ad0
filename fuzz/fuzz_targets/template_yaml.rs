//! Template metadata (`template.yaml`, parsed by `TemplateMeta::parse` in
//! `actors/src/templates.rs`): never a panic, never unbounded work, and whatever is accepted
//! has a valid name and usable resources.
#![no_main]

use flotilla_actors::templates::TemplateMeta;
use flotilla_actors::validate;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &str| {
    if let Ok(meta) = TemplateMeta::parse(input) {
        assert!(validate::slug(&meta.name).is_ok());
        let resources = meta.resources();
        assert!(resources.nano_cpus().is_ok(), "{:?}", resources);
        assert!(resources.memory_bytes().is_ok(), "{:?}", resources);
    }
});
