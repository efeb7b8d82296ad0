//! Building the workspace tree: from the flat entries of a directory's tar archive (in any order)
//! to nested, sorted [`FileEntry`] values. Pure; the archive reading is in [`super`].

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

/// What kind of thing an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// A regular file (also hard links, FIFOs and devices, which carry no size of their own).
    File,
    Directory,
    Symlink,
}

impl FileKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FileKind::File => "file",
            FileKind::Directory => "directory",
            FileKind::Symlink => "symlink",
        }
    }
}

/// One entry of the workspace tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    pub name: String,
    /// Relative to the workspace, `'/'`-separated.
    pub path: String,
    pub kind: FileKind,
    /// Bytes (0 for directories and symlinks).
    pub size: u64,
    pub modified: DateTime<Utc>,
    /// For a symlink: its target as written in the link (not resolved).
    pub link_target: Option<String>,
    /// For a directory whose contents were listed (within the depth limit); `None` for other
    /// entries and for directories at the depth limit.
    pub children: Option<Vec<FileEntry>>,
}

/// One archive entry, relative to the listed directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlatEntry {
    /// Components below the listed directory (at least one).
    pub components: Vec<String>,
    pub kind: FileKind,
    pub size: u64,
    pub modified: DateTime<Utc>,
    pub link_target: Option<String>,
}

#[derive(Default)]
struct Node {
    entry: Option<FlatEntry>,
    children: BTreeMap<String, Node>,
}

/// Nest `entries` (all at depth `1..=max_depth` below the listed directory, whose own
/// workspace-relative components are `base`) into a tree: directories first, then by name.
/// Directories at `max_depth` have no `children`. A directory missing from the archive but
/// implied by a deeper entry is shown with size 0 and the epoch as its time. Returns the tree and
/// the number of entries in it.
pub fn build(
    base: &[String],
    entries: Vec<FlatEntry>,
    max_depth: usize,
) -> (Vec<FileEntry>, usize) {
    let mut root = Node::default();
    for entry in entries {
        let mut node = &mut root;
        for component in &entry.components {
            node = node.children.entry(component.clone()).or_default();
        }
        node.entry = Some(entry);
    }
    let mut count = 0;
    let mut prefix = base.to_vec();
    let tree = nest(root.children, &mut prefix, 1, max_depth, &mut count);
    (tree, count)
}

fn nest(
    nodes: BTreeMap<String, Node>,
    prefix: &mut Vec<String>,
    depth: usize,
    max_depth: usize,
    count: &mut usize,
) -> Vec<FileEntry> {
    let mut out = Vec::with_capacity(nodes.len());
    for (name, node) in nodes {
        prefix.push(name.clone());
        let path = prefix.join("/");
        let (kind, size, modified, link_target) = match node.entry {
            Some(e) => (e.kind, e.size, e.modified, e.link_target),
            None => (FileKind::Directory, 0, DateTime::UNIX_EPOCH, None),
        };
        let children = (kind == FileKind::Directory && depth < max_depth)
            .then(|| nest(node.children, prefix, depth + 1, max_depth, count));
        prefix.pop();
        *count += 1;
        out.push(FileEntry {
            name,
            path,
            kind,
            size,
            modified,
            link_target,
            children,
        });
    }
    out.sort_by(|a, b| {
        (a.kind != FileKind::Directory)
            .cmp(&(b.kind != FileKind::Directory))
            .then_with(|| a.name.cmp(&b.name))
    });
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn flat(path: &str, kind: FileKind, size: u64) -> FlatEntry {
        FlatEntry {
            components: path.split('/').map(str::to_string).collect(),
            kind,
            size,
            modified: DateTime::UNIX_EPOCH,
            link_target: (kind == FileKind::Symlink).then(|| "/etc".to_string()),
        }
    }

    #[test]
    fn nests_sorts_and_counts() {
        let entries = vec![
            flat("z.txt", FileKind::File, 3),
            flat("src/main.rs", FileKind::File, 10),
            flat("src", FileKind::Directory, 0),
            flat("a-link", FileKind::Symlink, 0),
            flat("docs", FileKind::Directory, 0),
        ];
        let (tree, count) = build(&[], entries, 10);
        assert_eq!(count, 5);
        let names: Vec<&str> = tree.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["docs", "src", "a-link", "z.txt"]);
        assert_eq!(tree[0].children, Some(vec![]));
        let src = &tree[1];
        assert_eq!(src.path, "src");
        let main = &src.children.as_ref().map(|c| c[0].clone());
        assert_eq!(main.as_ref().map(|m| m.path.as_str()), Some("src/main.rs"));
        assert_eq!(main.as_ref().map(|m| m.size), Some(10));
        assert_eq!(tree[2].kind, FileKind::Symlink);
        assert_eq!(tree[2].link_target.as_deref(), Some("/etc"));
        assert_eq!(tree[3].children, None);
    }

    #[test]
    fn paths_carry_the_listed_directory() {
        let base = vec!["project".to_string(), "src".to_string()];
        let (tree, count) = build(&base, vec![flat("lib.rs", FileKind::File, 1)], 10);
        assert_eq!(count, 1);
        assert_eq!(tree[0].path, "project/src/lib.rs");
        assert_eq!(tree[0].name, "lib.rs");
    }

    #[test]
    fn directories_at_the_depth_limit_have_no_children() {
        let entries = vec![
            flat("a", FileKind::Directory, 0),
            flat("a/b", FileKind::Directory, 0),
        ];
        let (tree, count) = build(&[], entries, 2);
        assert_eq!(count, 2);
        let b = tree[0].children.as_ref().map(|c| c[0].clone());
        assert_eq!(b.as_ref().map(|b| b.children.is_none()), Some(true));
    }

    #[test]
    fn implied_directories_are_filled_in() {
        let (tree, count) = build(&[], vec![flat("x/y.txt", FileKind::File, 2)], 10);
        assert_eq!(count, 2);
        assert_eq!(tree[0].kind, FileKind::Directory);
        assert_eq!(tree[0].size, 0);
    }
}
