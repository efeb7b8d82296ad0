//! Agent templates: a catalog loaded once at start-up from a directory (`FLOTILLA_TEMPLATES_DIR`).
//!
//! Each template is a folder holding a `template.yaml` (name, display name, description, type,
//! runtime, model, resources, capabilities, tags, instructions, free-form metadata) and the files
//! that seed a new workspace. Creating an agent with `"template": "<name>"` applies the
//! template's defaults (explicit request fields win) and copies its files into the workspace
//! volume before the first start.
//!
//! Templates are read whole into memory (they are small, and bounded: see [`MAX_TEMPLATE_BYTES`])
//! so creating an agent never touches the filesystem. A folder that fails to load is logged and
//! skipped; it never stops the server.

use std::collections::BTreeMap;
use std::path::{Component, Path};

use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use crate::access::Action;
use crate::error::FleetError;
use crate::fleet::{Fleet, Visible};
use crate::model::{AgentRuntime, Principal, Resources};
use crate::validate;

/// The metadata file of a template folder.
pub const METADATA_FILE: &str = "template.yaml";
/// Most bytes of seed files one template may carry.
pub const MAX_TEMPLATE_BYTES: usize = 8 * 1024 * 1024;
/// Most seed files one template may carry.
pub const MAX_TEMPLATE_FILES: usize = 1000;
/// Largest `template.yaml` accepted.
pub const MAX_METADATA_BYTES: usize = 64 * 1024;

/// Template resources as written in YAML (each optional).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateResources {
    pub cpu: Option<String>,
    pub memory: Option<String>,
}

/// `template.yaml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateMeta {
    pub name: String,
    pub display_name: Option<String>,
    pub description: Option<String>,
    /// Default agent type.
    #[serde(rename = "type")]
    pub agent_type: Option<String>,
    /// Default runtime (`claude-code` or `gemini-cli`).
    pub runtime: Option<String>,
    pub runtime_model: Option<String>,
    #[serde(default)]
    pub resources: TemplateResources,
    #[serde(default)]
    pub capabilities: Vec<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    /// Default standing instructions, written to the runtime's instructions file.
    pub instructions: Option<String>,
    /// Anything else the template wants to say about itself.
    #[serde(default)]
    pub metadata: BTreeMap<String, serde_json::Value>,
}

impl TemplateMeta {
    /// Parse and validate a `template.yaml`. This is the parser for untrusted template input.
    pub fn parse(yaml: &str) -> Result<Self, String> {
        if yaml.len() > MAX_METADATA_BYTES {
            return Err(format!(
                "{METADATA_FILE} is larger than {MAX_METADATA_BYTES} bytes"
            ));
        }
        let meta: TemplateMeta = yaml_serde::from_str(yaml).map_err(|e| e.to_string())?;
        meta.validate()?;
        Ok(meta)
    }

    fn validate(&self) -> Result<(), String> {
        let field = |name: &str, e: String| format!("{name}: {e}");
        validate::slug(&self.name).map_err(|e| field("name", e))?;
        if let Some(t) = &self.agent_type {
            validate::slug(t).map_err(|e| field("type", e))?;
        }
        if let Some(r) = &self.runtime {
            r.parse::<AgentRuntime>().map_err(|()| {
                field(
                    "runtime",
                    format!("'{r}' is not one of claude-code, gemini-cli"),
                )
            })?;
        }
        for (name, value, max) in [
            ("display_name", &self.display_name, 128),
            ("description", &self.description, 4096),
            ("runtime_model", &self.runtime_model, 128),
        ] {
            if let Some(v) = value {
                validate::text(v, max).map_err(|e| field(name, e))?;
            }
        }
        if let Some(cpu) = &self.resources.cpu {
            validate::parse_cpu(cpu).map_err(|e| field("resources.cpu", e))?;
        }
        if let Some(memory) = &self.resources.memory {
            validate::parse_memory(memory).map_err(|e| field("resources.memory", e))?;
        }
        validate::tags(&self.tags).map_err(|e| field("tags", e))?;
        for c in &self.capabilities {
            validate::text(c, 128).map_err(|e| field("capabilities", e))?;
        }
        Ok(())
    }

    /// The resources an agent made from this template gets, before explicit overrides.
    pub fn resources(&self) -> Resources {
        let defaults = Resources::default();
        Resources {
            cpu: self.resources.cpu.clone().unwrap_or(defaults.cpu),
            memory: self.resources.memory.clone().unwrap_or(defaults.memory),
        }
    }
}

/// One loaded template.
#[derive(Debug, Clone)]
pub struct Template {
    pub meta: TemplateMeta,
    /// Seed files: workspace-relative path (`/`-separated) → content.
    pub files: BTreeMap<String, Vec<u8>>,
}

/// Every template, by name.
#[derive(Debug, Clone, Default)]
pub struct TemplateCatalog {
    templates: BTreeMap<String, Template>,
}

impl TemplateCatalog {
    pub fn empty() -> Self {
        Self::default()
    }

    /// Load every template folder under `dir`. A missing directory is an empty catalog.
    /// Blocking file I/O: call at start-up (or from `spawn_blocking`).
    pub fn load(dir: &Path) -> Self {
        let mut catalog = Self::default();
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(error) => {
                info!(dir = %dir.display(), %error, "no templates directory");
                return catalog;
            }
        };
        let mut folders: Vec<_> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.is_dir())
            .collect();
        folders.sort();
        for folder in folders {
            match load_template(&folder) {
                Ok(template) => match catalog.templates.entry(template.meta.name.clone()) {
                    std::collections::btree_map::Entry::Occupied(taken) => {
                        warn!(template = %taken.key(), folder = %folder.display(), "duplicate template name, skipped");
                    }
                    std::collections::btree_map::Entry::Vacant(slot) => {
                        slot.insert(template);
                    }
                },
                Err(error) => warn!(folder = %folder.display(), %error, "template skipped"),
            }
        }
        info!(dir = %dir.display(), count = catalog.templates.len(), "templates loaded");
        catalog
    }

    pub fn get(&self, name: &str) -> Option<&Template> {
        self.templates.get(name)
    }

    pub fn all(&self) -> impl Iterator<Item = &Template> {
        self.templates.values()
    }

    pub fn insert(&mut self, template: Template) {
        self.templates.insert(template.meta.name.clone(), template);
    }
}

fn load_template(folder: &Path) -> Result<Template, String> {
    let yaml = std::fs::read_to_string(folder.join(METADATA_FILE))
        .map_err(|e| format!("reading {METADATA_FILE}: {e}"))?;
    let meta = TemplateMeta::parse(&yaml)?;
    let folder_name = folder.file_name().and_then(|n| n.to_str()).unwrap_or("");
    if folder_name != meta.name {
        return Err(format!(
            "name '{}' does not match its folder '{folder_name}'",
            meta.name
        ));
    }
    let mut files = BTreeMap::new();
    let mut total = 0usize;
    collect_files(folder, folder, &mut files, &mut total)?;
    files.remove(METADATA_FILE);
    Ok(Template { meta, files })
}

/// Regular files under `dir`, recursively; symlinks and special files are skipped so a template
/// can never seed anything from outside its folder.
fn collect_files(
    root: &Path,
    dir: &Path,
    files: &mut BTreeMap<String, Vec<u8>>,
    total: &mut usize,
) -> Result<(), String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("reading {}: {e}", dir.display()))?;
    for entry in entries.filter_map(Result::ok) {
        let path = entry.path();
        let kind = entry
            .file_type()
            .map_err(|e| format!("reading {}: {e}", path.display()))?;
        if kind.is_dir() {
            collect_files(root, &path, files, total)?;
        } else if kind.is_file() {
            let relative = path
                .strip_prefix(root)
                .map_err(|e| e.to_string())?
                .components()
                .map(|c| match c {
                    Component::Normal(part) => part.to_str().map(str::to_string),
                    _ => None,
                })
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| format!("unusable file name {}", path.display()))?
                .join("/");
            let content =
                std::fs::read(&path).map_err(|e| format!("reading {}: {e}", path.display()))?;
            *total += content.len();
            if *total > MAX_TEMPLATE_BYTES || files.len() >= MAX_TEMPLATE_FILES {
                return Err(format!(
                    "more than {MAX_TEMPLATE_FILES} files or {MAX_TEMPLATE_BYTES} bytes"
                ));
            }
            files.insert(relative, content);
        }
    }
    Ok(())
}

impl Fleet {
    /// Every template, by name.
    pub fn templates(&self) -> Vec<Template> {
        self.inner.templates.all().cloned().collect()
    }

    /// The agent (readable by `who`) and the template it was made from, if that template is
    /// still in the catalog.
    pub fn agent_info(
        &self,
        who: &Principal,
        name: &str,
    ) -> Result<(Visible, Option<Template>), FleetError> {
        let visible = self.agent(who, name, Action::Read)?;
        let template = visible
            .view
            .record
            .template
            .as_deref()
            .and_then(|t| self.inner.templates.get(t))
            .cloned();
        Ok((visible, template))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_template_parses() {
        let meta = TemplateMeta::parse(
            "name: research-assistant\n\
             display_name: Research Assistant\n\
             type: research\n\
             runtime: gemini-cli\n\
             resources: {cpu: \"1\", memory: 2g}\n\
             capabilities: [web research, summaries]\n\
             tags: [Research]\n\
             metadata: {version: 2, author: flotilla}\n",
        )
        .unwrap();
        assert_eq!(meta.resources().memory, "2g");
        assert_eq!(meta.metadata["version"], serde_json::json!(2));
    }

    #[test]
    fn the_shipped_templates_load() {
        let dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../templates"));
        let catalog = TemplateCatalog::load(dir);
        let names: Vec<&str> = catalog.all().map(|t| t.meta.name.as_str()).collect();
        assert_eq!(names, ["code-reviewer", "research-assistant"]);
        for template in catalog.all() {
            assert!(template.meta.instructions.is_some());
            assert!(!template.files.is_empty());
            assert!(!template.files.contains_key(METADATA_FILE));
        }
    }

    #[test]
    fn bad_templates_are_refused_with_the_field() {
        for (yaml, field) in [
            ("name: Bad Name", "name"),
            ("name: ok\nruntime: vim", "runtime"),
            ("name: ok\nresources: {cpu: lots}", "resources.cpu"),
            ("name: ok\ntags: ['a b']", "tags"),
            ("name: ok\nunknown_key: 1", "unknown field"),
            ("- just\n- a list", "invalid type"),
        ] {
            let error = TemplateMeta::parse(yaml).unwrap_err();
            assert!(error.contains(field), "{yaml}: {error}");
        }
    }
}
