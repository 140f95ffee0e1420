//! Links the system OpenBLAS when it is there. Without it the build still succeeds: src/blas.rs
//! then provides the CBLAS functions ndarray calls, on the pure-Rust `matrixmultiply`.
//!
//! `MICROGPT_BLAS=none` skips the probe; `MICROGPT_BLAS=openblas` makes a missing OpenBLAS a
//! build error. `--no-default-features` (no `openblas` feature) always builds pure Rust.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo::rustc-check-cfg=cfg(microgpt_openblas)");
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=MICROGPT_BLAS");
    let choice = env::var("MICROGPT_BLAS").unwrap_or_default();
    let required = match choice.as_str() {
        "" | "auto" => false,
        "openblas" => true,
        "none" => return,
        other => panic!("MICROGPT_BLAS={other:?}: expected none, openblas or auto"),
    };
    if env::var_os("CARGO_FEATURE_OPENBLAS").is_none() {
        return;
    }
    println!("cargo::rerun-if-env-changed=PKG_CONFIG_PATH");
    println!("cargo::rerun-if-env-changed=LIBRARY_PATH");
    // The probe looks at this machine's files, which only describe the target when they are one.
    let native = env::var("HOST").ok() == env::var("TARGET").ok();
    let dirs = if native { candidate_dirs() } else { Vec::new() };
    let lib = format!(
        "{}openblas{}",
        env::consts::DLL_PREFIX,
        env::consts::DLL_SUFFIX
    );
    match dirs
        .iter()
        .map(|dir| dir.join(&lib))
        .find(|path| path.exists())
    {
        Some(path) => {
            // Gone (uninstalled) makes cargo run this probe again.
            println!("cargo::rerun-if-changed={}", path.display());
            let dir = path.parent().expect("a library path has a directory");
            println!("cargo::rustc-link-search=native={}", dir.display());
            println!("cargo::rustc-link-lib=dylib=openblas");
            println!("cargo::rustc-cfg=microgpt_openblas");
        }
        None if required => panic!(
            "MICROGPT_BLAS=openblas, but no {lib} in {dirs:?}: install libopenblas-dev, or add \
             the directory holding {lib} to LIBRARY_PATH or its openblas.pc to PKG_CONFIG_PATH"
        ),
        None => {
            // Installing OpenBLAS adds files to one of these, which makes cargo probe again.
            // Cargo scans a directory recursively on every build: /usr/lib (70,000 files on
            // Debian, whose OpenBLAS goes to the multiarch directory anyway) is left out.
            for dir in dirs
                .iter()
                .filter(|dir| dir.is_dir() && *dir != Path::new("/usr/lib"))
            {
                println!("cargo::rerun-if-changed={}", dir.display());
            }
            println!(
                "cargo::warning=OpenBLAS not found: built on the pure-Rust GEMM; \
                 `apt-get install libopenblas-dev` and rebuild for ~1.5x faster large models"
            );
        }
    }
}

/// Where the linker may find libopenblas: pkg-config's answer, then LIBRARY_PATH (which the C
/// compiler driving the link searches), then the usual system directories.
fn candidate_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = pkg_config_lib_dirs();
    if let Some(paths) = env::var_os("LIBRARY_PATH") {
        dirs.extend(env::split_paths(&paths).filter(|dir| !dir.as_os_str().is_empty()));
    }
    let arch = env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let multiarch = format!("/usr/lib/{arch}-linux-gnu");
    for dir in [
        "/usr/local/lib",
        &multiarch,
        "/usr/lib64",
        "/usr/lib",
        "/opt/homebrew/opt/openblas/lib",
    ] {
        dirs.push(PathBuf::from(dir));
    }
    dirs
}

/// The `-L` directories of `pkg-config --libs openblas`; none when pkg-config or the package is
/// missing (a machine with only Rust has no pkg-config).
fn pkg_config_lib_dirs() -> Vec<PathBuf> {
    let output = Command::new("pkg-config")
        .args(["--libs-only-L", "openblas"])
        .output();
    match output {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .filter_map(|flag| flag.strip_prefix("-L"))
            .map(|dir| Path::new(dir).to_path_buf())
            .collect(),
        _ => Vec::new(),
    }
}
