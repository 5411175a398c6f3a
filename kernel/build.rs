//! Link the bare-metal kernel binary with linker/kernel.ld (absolute path, so the build
//! works from any directory) and fail on any section the script does not place; record
//! the compiler's version and the git commit (with `-dirty` for uncommitted changes)
//! for `version`.

fn main() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let version = std::process::Command::new(rustc)
        .arg("-V")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .unwrap_or_default();
    println!("cargo:rustc-env=MM_RUSTC_VERSION={}", version.trim());
    println!("cargo:rustc-env=MM_TARGET={}", std::env::var("TARGET").unwrap_or_default());
    git_version();
    let target_os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if target_os != "none" {
        return;
    }
    let manifest = std::path::PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets this"));
    let script = manifest.join("../linker/kernel.ld");
    println!("cargo:rerun-if-changed={}", script.display());
    println!("cargo:rustc-link-arg-bins=-T{}", script.display());
    println!("cargo:rustc-link-arg-bins=--orphan-handling=error");
}

/// `MM_GIT_VERSION`: the commit's short hash, `-dirty` if tracked files differ from it;
/// `unknown` outside a git checkout (a source tarball). Rebuilt when HEAD or the index
/// moves (a commit, a checkout, `git add`).
fn git_version() {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let version = match git(&["rev-parse", "--short=12", "HEAD"]) {
        Some(hash) if !hash.is_empty() => {
            let dirty = git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
            if dirty {
                format!("{hash}-dirty")
            } else {
                hash
            }
        }
        _ => "unknown".to_string(),
    };
    println!("cargo:rustc-env=MM_GIT_VERSION={version}");
    // HEAD and the index of this worktree (a linked worktree keeps them in its own git dir).
    if let Some(dir) = git(&["rev-parse", "--absolute-git-dir"]) {
        for f in ["HEAD", "index"] {
            println!("cargo:rerun-if-changed={dir}/{f}");
        }
        if let Some(head_ref) = git(&["symbolic-ref", "-q", "HEAD"]) {
            if let Some(common) = git(&["rev-parse", "--path-format=absolute", "--git-common-dir"]) {
                println!("cargo:rerun-if-changed={common}/{head_ref}");
            }
        }
    }
    // Edits to tracked files make the tree dirty: any source change rebuilds the crate,
    // which reruns this script only if it is told to watch the sources too.
    for d in ["src", "mm/src", "../boot/src", "../board/src"] {
        println!("cargo:rerun-if-changed={d}");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
