//! `flotilla image build`: the default agent image, made locally with no registry.
//!
//! The root filesystem is assembled in memory from the host's statically linked busybox (one
//! binary plus a symlink per applet), an `/etc/passwd` with the unprivileged `developer` user
//! (uid 1000, home `/home/developer`), and the usual top-level directories; it is imported
//! through Docker's image-create API (`docker import`), with the image config (user, workdir,
//! command) applied as import changes. The result honours the agent image contract of
//! DESIGN.md: a long-running default command, `developer` and its home, a POSIX shell — plus
//! the runtimes' state directories (`~/.claude`, `~/.gemini`) owned by `developer`, which the
//! per-agent state volume is mounted over (a fresh volume takes its owner from the image).

use std::path::Path;

use bollard::query_parameters::CreateImageOptionsBuilder;
use futures_util::TryStreamExt;

use super::RuntimeError;
use super::docker::{DockerRuntime, bounded};

/// The image `serve` uses unless `FLOTILLA_AGENT_IMAGE` says otherwise.
pub const DEFAULT_IMAGE: &str = "flotilla-agent:local";

/// Where the host's static busybox usually is (Debian's `busybox-static`).
pub const DEFAULT_BUSYBOX: &str = "/bin/busybox";

/// The agent's default command: say it is up (so logs show something), then idle. The image
/// runs under Docker's init, so `sleep` gets SIGTERM on stop and the agent stops at once.
const COMMAND: &str = r#"CMD ["/bin/sh", "-c", "echo \"flotilla agent ${AGENT_NAME:-unnamed} ready\"; exec sleep infinity"]"#;

/// Version of the default image's contents, written as the `flotilla.image-version` label.
/// Bump it whenever [`rootfs`] or the import changes change: `serve` rebuilds a default image
/// whose label differs.
pub const IMAGE_VERSION: &str = "3";
const VERSION_LABEL: &str = "flotilla.image-version";

/// Whether `image` exists and was built by this version of [`build`].
pub async fn is_current(runtime: &DockerRuntime, image: &str) -> Result<bool, RuntimeError> {
    let docker = runtime.client().clone();
    let name = image.to_string();
    match bounded(
        std::time::Duration::from_secs(30),
        "inspecting the agent image",
        async move { docker.inspect_image(&name).await },
    )
    .await
    {
        Ok(inspect) => Ok(inspect
            .config
            .and_then(|c| c.labels)
            .and_then(|l| l.get(VERSION_LABEL).cloned())
            .is_some_and(|v| v == IMAGE_VERSION)),
        Err(RuntimeError::NotFound(_)) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Build `image` from the busybox binary at `busybox`, replacing any image of that name.
pub async fn build(
    runtime: &DockerRuntime,
    image: &str,
    busybox: &Path,
) -> Result<(), RuntimeError> {
    let busybox = busybox.to_path_buf();
    let rootfs = tokio::task::spawn_blocking(move || rootfs(&busybox))
        .await
        .map_err(|e| RuntimeError::Other(format!("building the root filesystem: {e}")))??;

    let (repo, tag) = image.rsplit_once(':').unwrap_or((image, "latest"));
    let options = CreateImageOptionsBuilder::default()
        .from_src("-")
        .repo(repo)
        .tag(tag)
        .changes(vec![
            format!("LABEL {VERSION_LABEL}={IMAGE_VERSION}"),
            "USER 1000:1000".into(),
            "WORKDIR /home/developer".into(),
            "ENV HOME=/home/developer".into(),
            "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
            COMMAND.into(),
        ])
        .build();
    let docker = runtime.client().clone();
    bounded(
        std::time::Duration::from_secs(300),
        "importing the agent image",
        async move {
            docker
                .create_image(Some(options), Some(bollard::body_full(rootfs.into())), None)
                .try_collect::<Vec<_>>()
                .await
        },
    )
    .await?;
    Ok(())
}

/// The root filesystem as a tar archive.
fn rootfs(busybox: &Path) -> Result<Vec<u8>, RuntimeError> {
    let fail = |what: &str, e: &dyn std::fmt::Display| {
        RuntimeError::Other(format!("{what} ({}): {e}", busybox.display()))
    };
    let binary = std::fs::read(busybox).map_err(|e| fail("reading busybox", &e))?;
    if !is_static_elf(&binary) {
        return Err(RuntimeError::Other(format!(
            "{} is not a statically linked ELF executable; install a static busybox \
             (Debian: busybox-static) or point FLOTILLA_BUSYBOX at one",
            busybox.display()
        )));
    }
    let listing = std::process::Command::new(busybox)
        .arg("--list-full")
        .output()
        .map_err(|e| fail("listing busybox applets", &e))?;
    let applets = String::from_utf8_lossy(&listing.stdout).into_owned();

    let mut tar = tar::Builder::new(Vec::new());
    let mut add = |path: &str, entry: Entry<'_>| -> Result<(), RuntimeError> {
        let mut header = tar::Header::new_gnu();
        header.set_mtime(0);
        let (uid, mode, data): (u64, u32, &[u8]) = match entry {
            Entry::Dir { uid, mode } => {
                header.set_entry_type(tar::EntryType::Directory);
                (uid, mode, &[])
            }
            Entry::File { mode, data } => {
                header.set_entry_type(tar::EntryType::Regular);
                (0, mode, data)
            }
            Entry::Link { target } => {
                header.set_entry_type(tar::EntryType::Symlink);
                header
                    .set_link_name(target)
                    .map_err(|e| fail("adding a symlink", &e))?;
                (0, 0o777, &[])
            }
        };
        header.set_uid(uid);
        header.set_gid(uid);
        header.set_mode(mode);
        header.set_size(data.len() as u64);
        tar.append_data(&mut header, path, data)
            .map_err(|e| fail("building the root filesystem", &e))
    };

    for dir in [
        "bin",
        "sbin",
        "usr",
        "usr/bin",
        "usr/sbin",
        "usr/local",
        "usr/local/bin",
        "etc",
        "dev",
        "proc",
        "sys",
        "var",
        "run",
    ] {
        add(
            dir,
            Entry::Dir {
                uid: 0,
                mode: 0o755,
            },
        )?;
    }
    add(
        "tmp",
        Entry::Dir {
            uid: 0,
            mode: 0o1777,
        },
    )?;
    add(
        "var/tmp",
        Entry::Dir {
            uid: 0,
            mode: 0o1777,
        },
    )?;
    add(
        "root",
        Entry::Dir {
            uid: 0,
            mode: 0o700,
        },
    )?;
    add(
        "home",
        Entry::Dir {
            uid: 0,
            mode: 0o755,
        },
    )?;
    // Home, the runtimes' state directories and the shared folder: volumes mounted over them
    // take their owner from here when fresh (the agent image contract).
    for dir in [
        "home/developer",
        "home/developer/.claude",
        "home/developer/.gemini",
        "home/developer/shared-out",
    ] {
        add(
            dir,
            Entry::Dir {
                uid: 1000,
                mode: 0o755,
            },
        )?;
    }
    add(
        "bin/busybox",
        Entry::File {
            mode: 0o755,
            data: &binary,
        },
    )?;
    for applet in applets.lines().map(str::trim).filter(|a| !a.is_empty()) {
        if applet == "bin/busybox" || applet.contains("..") || applet.starts_with('/') {
            continue;
        }
        add(
            applet,
            Entry::Link {
                target: "/bin/busybox",
            },
        )?;
    }
    let passwd = "root:x:0:0:root:/root:/bin/sh\n\
                  developer:x:1000:1000:developer:/home/developer:/bin/sh\n\
                  nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";
    let group = "root:x:0:\ndeveloper:x:1000:\nnogroup:x:65534:\n";
    add(
        "etc/passwd",
        Entry::File {
            mode: 0o644,
            data: passwd.as_bytes(),
        },
    )?;
    add(
        "etc/group",
        Entry::File {
            mode: 0o644,
            data: group.as_bytes(),
        },
    )?;
    tar.into_inner()
        .map_err(|e| fail("building the root filesystem", &e))
}

enum Entry<'a> {
    Dir { uid: u64, mode: u32 },
    File { mode: u32, data: &'a [u8] },
    Link { target: &'a str },
}

/// True for a 64- or 32-bit ELF executable without a program interpreter (`PT_INTERP`), i.e.
/// one that runs in an empty root filesystem.
fn is_static_elf(bytes: &[u8]) -> bool {
    const PT_INTERP: u32 = 3;
    if bytes.len() < 0x34 || &bytes[..4] != b"\x7fELF" || bytes[5] != 1 {
        return false; // not ELF, or not little-endian
    }
    let u16_at = |o: usize| {
        bytes
            .get(o..o + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
    };
    let u32_at = |o: usize| {
        bytes
            .get(o..o + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let u64_at = |o: usize| {
        bytes.get(o..o + 8).map(|b| {
            let mut a = [0u8; 8];
            a.copy_from_slice(b);
            u64::from_le_bytes(a)
        })
    };
    let wide = bytes[4] == 2;
    let (phoff, phentsize, phnum) = if wide {
        (u64_at(0x20), u16_at(0x36), u16_at(0x38))
    } else {
        (u32_at(0x1c).map(u64::from), u16_at(0x2a), u16_at(0x2c))
    };
    let (Some(phoff), Some(phentsize), Some(phnum)) = (phoff, phentsize, phnum) else {
        return false;
    };
    (0..u64::from(phnum)).all(|i| {
        let offset = phoff + i * u64::from(phentsize);
        usize::try_from(offset)
            .ok()
            .and_then(u32_at)
            .is_some_and(|p_type| p_type != PT_INTERP)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dynamic_executables_are_not_static() {
        if let Ok(sh) = std::fs::read("/bin/ls") {
            assert!(!is_static_elf(&sh));
        }
        assert!(!is_static_elf(b"#!/bin/sh\n"));
        assert!(!is_static_elf(&[]));
    }
}
