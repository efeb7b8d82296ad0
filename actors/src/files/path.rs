//! Workspace path normalisation: the pure, lexical half of keeping file access inside
//! `/home/developer`. [`normalize`] turns what a client sent into components relative to the
//! workspace, or refuses it; it touches nothing, so it can be fuzzed on its own. The other half,
//! following symbolic links component by component inside the container, is `resolve` in the
//! parent module.

/// The agent's workspace inside its container (the home of user `developer`, where the
/// workspace volume is mounted). No file operation reaches outside it.
pub const WORKSPACE: &str = "/home/developer";

/// Longest path accepted, in bytes (Linux's `PATH_MAX`).
pub const MAX_PATH_BYTES: usize = 4096;

/// Longest single component accepted, in bytes (Linux's `NAME_MAX`).
pub const MAX_COMPONENT_BYTES: usize = 255;

/// Most components a normalised path may have.
pub const MAX_COMPONENTS: usize = 128;

/// Why a path was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("must be at most {MAX_PATH_BYTES} bytes")]
    TooLong,
    #[error("must not contain NUL or other control characters")]
    ControlCharacter,
    #[error("must stay inside {WORKSPACE}")]
    Escapes,
    #[error("a path component must be at most {MAX_COMPONENT_BYTES} bytes")]
    ComponentTooLong,
    #[error("must have at most {MAX_COMPONENTS} components")]
    TooManyComponents,
}

/// Normalise a client-supplied path into its components relative to the workspace.
///
/// - A relative path is taken from the workspace; an absolute path must lie inside
///   [`WORKSPACE`] (the workspace itself included).
/// - Empty and `.` components are dropped; `..` removes the previous component, and one that
///   would climb above the workspace refuses the path ([`PathError::Escapes`]). For an absolute
///   path, `..` is applied first (`/..` is `/`, as in POSIX) and the result must then lie inside
///   the workspace.
/// - NUL and every other control character are refused, as are over-long paths and components.
///
/// The empty result is the workspace itself. Every returned component is non-empty, is neither
/// `.` nor `..`, and contains no `/` and no control character. This is purely lexical: symbolic
/// links are the caller's business.
pub fn normalize(input: &str) -> Result<Vec<String>, PathError> {
    if input.len() > MAX_PATH_BYTES {
        return Err(PathError::TooLong);
    }
    if input.chars().any(char::is_control) {
        return Err(PathError::ControlCharacter);
    }
    let absolute = input.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in input.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() && !absolute {
                    return Err(PathError::Escapes);
                }
            }
            name => {
                if name.len() > MAX_COMPONENT_BYTES {
                    return Err(PathError::ComponentTooLong);
                }
                parts.push(name);
            }
        }
    }
    let relative = if absolute {
        let root: Vec<&str> = WORKSPACE.split('/').filter(|p| !p.is_empty()).collect();
        if !parts.starts_with(&root) {
            return Err(PathError::Escapes);
        }
        &parts[root.len()..]
    } else {
        &parts[..]
    };
    if relative.len() > MAX_COMPONENTS {
        return Err(PathError::TooManyComponents);
    }
    Ok(relative.iter().map(|p| (*p).to_string()).collect())
}

/// The absolute path inside the container of workspace-relative `components`.
pub fn absolute(components: &[String]) -> String {
    let mut path = String::from(WORKSPACE);
    for c in components {
        path.push('/');
        path.push_str(c);
    }
    path
}

/// Workspace-relative components as the API shows them (`'/'`-separated, `""` for the root).
pub fn display(components: &[String]) -> String {
    components.join("/")
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn ok(input: &str) -> String {
        match normalize(input) {
            Ok(parts) => display(&parts),
            Err(e) => panic!("{input:?} refused: {e}"),
        }
    }

    fn refused(input: &str) -> PathError {
        match normalize(input) {
            Ok(parts) => panic!("{input:?} accepted as {parts:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn relative_paths_are_taken_from_the_workspace() {
        assert_eq!(ok(""), "");
        assert_eq!(ok("."), "");
        assert_eq!(ok("./"), "");
        assert_eq!(ok("notes.txt"), "notes.txt");
        assert_eq!(ok("src/main.rs"), "src/main.rs");
        assert_eq!(ok("src//main.rs/"), "src/main.rs");
        assert_eq!(ok("./src/./main.rs"), "src/main.rs");
        assert_eq!(ok(".claude/projects"), ".claude/projects");
        assert_eq!(ok("a b/ü.txt"), "a b/ü.txt");
        assert_eq!(ok("..."), "...");
        assert_eq!(ok("..a/b.."), "..a/b..");
        assert_eq!(ok("~/x"), "~/x");
        assert_eq!(ok("%2e%2e/x"), "%2e%2e/x");
        assert_eq!(ok("..\\..\\etc"), "..\\..\\etc");
    }

    #[test]
    fn dot_dot_inside_the_workspace_is_resolved() {
        assert_eq!(ok("a/../b"), "b");
        assert_eq!(ok("a/b/../../c"), "c");
        assert_eq!(ok("a/.."), "");
        assert_eq!(ok("a/./../b/./c/.."), "b");
    }

    #[test]
    fn dot_dot_above_the_workspace_is_refused() {
        assert_eq!(refused(".."), PathError::Escapes);
        assert_eq!(refused("../"), PathError::Escapes);
        assert_eq!(refused("../../etc/passwd"), PathError::Escapes);
        assert_eq!(refused("a/../../etc/passwd"), PathError::Escapes);
        assert_eq!(refused("./../developer/x"), PathError::Escapes);
        assert_eq!(refused("a/b/../../../x"), PathError::Escapes);
    }

    #[test]
    fn absolute_paths_must_lie_inside_the_workspace() {
        assert_eq!(ok("/home/developer"), "");
        assert_eq!(ok("/home/developer/"), "");
        assert_eq!(ok("/home/developer/notes.txt"), "notes.txt");
        assert_eq!(ok("//home//developer//a/b"), "a/b");
        assert_eq!(ok("/home/developer/../developer/x"), "x");
        assert_eq!(ok("/../home/developer/x"), "x");
        assert_eq!(ok("/home/./developer/x"), "x");
        assert_eq!(refused("/etc/passwd"), PathError::Escapes);
        assert_eq!(refused("/"), PathError::Escapes);
        assert_eq!(refused("/home"), PathError::Escapes);
        assert_eq!(refused("/home/developerx/a"), PathError::Escapes);
        assert_eq!(refused("/home/developer/../../etc"), PathError::Escapes);
        assert_eq!(refused("/home/developer/.."), PathError::Escapes);
        assert_eq!(refused("/home/dev/../developer2"), PathError::Escapes);
    }

    #[test]
    fn control_characters_are_refused() {
        for input in [
            "a\0b",
            "\0",
            "a/\nb",
            "tab\there",
            "del\u{7f}",
            "c1\u{85}x",
            "x\r",
        ] {
            assert_eq!(refused(input), PathError::ControlCharacter, "{input:?}");
        }
    }

    #[test]
    fn sizes_are_bounded() {
        let long = "a".repeat(MAX_PATH_BYTES + 1);
        assert_eq!(refused(&long), PathError::TooLong);
        let component = "b".repeat(MAX_COMPONENT_BYTES + 1);
        assert_eq!(refused(&component), PathError::ComponentTooLong);
        assert_eq!(
            ok(&"c".repeat(MAX_COMPONENT_BYTES)).len(),
            MAX_COMPONENT_BYTES
        );
        let deep = vec!["d"; MAX_COMPONENTS + 1].join("/");
        assert_eq!(refused(&deep), PathError::TooManyComponents);
        let deep_ok = vec!["d"; MAX_COMPONENTS].join("/");
        assert_eq!(normalize(&deep_ok).map(|p| p.len()), Ok(MAX_COMPONENTS));
        // Many components that cancel out are fine: only the result is bounded.
        let cancelling = "x/..//".repeat(600);
        assert_eq!(ok(&cancelling), "");
    }

    #[test]
    fn output_components_are_always_plain_names() {
        let inputs = [
            "",
            "a",
            "/home/developer/a/./b/../c",
            "x//y/",
            "a/b/c/../../../",
            "é/…/..x",
        ];
        for input in inputs {
            let parts = normalize(input).unwrap_or_default();
            for p in &parts {
                assert!(
                    !p.is_empty() && p != "." && p != "..",
                    "{input:?} gave {p:?}"
                );
                assert!(!p.contains('/') && !p.chars().any(char::is_control));
            }
            // Normalising is idempotent.
            assert_eq!(normalize(&display(&parts)).as_ref(), Ok(&parts));
            assert_eq!(normalize(&absolute(&parts)).as_ref(), Ok(&parts));
        }
    }

    #[test]
    fn absolute_and_display_render_components() {
        let parts = vec!["a".to_string(), "b c".to_string()];
        assert_eq!(absolute(&parts), "/home/developer/a/b c");
        assert_eq!(absolute(&[]), "/home/developer");
        assert_eq!(display(&parts), "a/b c");
    }
}
