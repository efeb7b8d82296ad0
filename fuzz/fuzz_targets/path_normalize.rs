//! Workspace path normalisation (`actors/src/files/path.rs`), the lexical guard of every file
//! route: never a panic, and whatever is accepted stays inside the workspace — no empty, `.` or
//! `..` component, no `/` or control character in a component, within the limits — and
//! normalising the result again gives the same components.
#![no_main]

use flotilla_actors::files::path::{self, MAX_COMPONENT_BYTES, MAX_COMPONENTS, WORKSPACE};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &str| {
    let Ok(parts) = path::normalize(input) else {
        return;
    };
    assert!(parts.len() <= MAX_COMPONENTS);
    for part in &parts {
        assert!(
            !part.is_empty() && part != "." && part != "..",
            "{input:?} → {parts:?}"
        );
        assert!(!part.contains('/') && !part.chars().any(char::is_control));
        assert!(part.len() <= MAX_COMPONENT_BYTES);
    }
    let absolute = path::absolute(&parts);
    assert!(absolute == WORKSPACE || absolute.starts_with(&format!("{WORKSPACE}/")));
    assert_eq!(path::normalize(&absolute).as_ref(), Ok(&parts), "{input:?}");
    assert_eq!(
        path::normalize(&path::display(&parts)).as_ref(),
        Ok(&parts),
        "{input:?}"
    );
});
