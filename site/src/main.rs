//! `cargo run -p site -- [--release] [--site-root DIR]`: builds the server and the site it
//! serves — the app compiled to wasm (hydrate feature), split so the builder is a lazily loaded
//! chunk, bound to JS by wasm-bindgen, shrunk by wasm-opt in release, the stylesheet and the
//! `public/` assets — then precompresses the site (`flowscope precompress`).
//!
//! It does what `cargo leptos build --split` does, with the libraries cargo-leptos itself calls
//! (`wasm_split_cli_support`, `wasm-bindgen-cli-support`), and reads the same
//! `[[workspace.metadata.leptos]]` table, so `cargo leptos watch` keeps working for whoever
//! installs it. Why a crate of its own: a new machine compiled cargo-leptos (~7 min) and
//! wasm-bindgen-cli (~2.5 min) before the first build; this compiles in about two, and its
//! wasm-bindgen version is locked by the workspace's own `Cargo.lock`.
//!
//! Not done, on purpose: JS minification (cargo-leptos links the whole swc compiler for it;
//! the glue is small and served brotli-compressed) and CSS prefixing (the stylesheet is written
//! for current browsers).
//!
//! Release builds erase view types (`--cfg erase_components`) in the server and the bundle alike,
//! so the two render the same markup: the bundle is 16% smaller gzipped and builds faster. Debug
//! builds stay unerased, so the server is the one `cargo test` already built.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

/// The wasm-bindgen version this builder binds with (its `Cargo.toml` pins the library). The
/// JS it writes must match the `wasm-bindgen` crate the app was compiled against, so a bump of
/// one without the other stops here rather than in a browser.
const WASM_BINDGEN: &str = "0.2.130";

/// What the build needs from `[[workspace.metadata.leptos]]`.
struct Config {
    output_name: String,
    site_root: PathBuf,
    pkg_dir: String,
    style_file: PathBuf,
    assets_dir: PathBuf,
    lib_package: String,
    lib_features: Vec<String>,
    lib_default_features: bool,
    lib_profile_release: String,
}

/// Where the wasm is compiled: a target dir of its own (cargo-leptos's `target/front`), so the
/// wasm build's RUSTFLAGS never invalidate the server's artifacts.
fn front_target_dir(workspace: &Path) -> PathBuf {
    target_dir(workspace).join("front")
}

fn target_dir(workspace: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"))
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("site: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<()> {
    let mut release = false;
    let mut site_root = std::env::var_os("LEPTOS_SITE_ROOT").map(PathBuf::from);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--release" => release = true,
            "--site-root" => {
                site_root = Some(args.next().context("--site-root needs a directory")?.into())
            }
            other => {
                bail!("unknown argument {other:?} (usage: site [--release] [--site-root DIR])")
            }
        }
    }
    // The workspace root: this crate's parent, wherever cargo was run from.
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("the site crate sits in the workspace")?;
    std::env::set_current_dir(workspace)?;
    check_wasm_bindgen(&workspace.join("Cargo.lock"))?;
    let mut config = Config::read(&workspace.join("Cargo.toml"))?;
    if let Some(root) = site_root {
        config.site_root = root;
    }
    let started = std::time::Instant::now();
    let rustflags = rustflags(release);
    let server = compile_server(workspace, release, &rustflags)?;
    let wasm = compile_wasm(&config, workspace, release, &rustflags)?;
    // Compiled: only now is the old site replaced (a failed build leaves it serving). A fresh
    // pkg folder: chunks and compressed copies of an older build must not linger.
    let pkg = config.site_root.join(&config.pkg_dir);
    if pkg.exists() {
        std::fs::remove_dir_all(&pkg).with_context(|| format!("clearing {}", pkg.display()))?;
    }
    std::fs::create_dir_all(&pkg).with_context(|| format!("creating {}", pkg.display()))?;
    let main_wasm = split(&config, &wasm, &pkg)?;
    bindgen(&config, &main_wasm, &pkg)?;
    if release {
        optimise(&pkg)?;
    }
    copy_file(
        &config.style_file,
        &pkg.join(format!("{}.css", config.output_name)),
    )?;
    let hash = fingerprint(&config, &pkg)?;
    if config.assets_dir.is_dir() {
        copy_dir(&config.assets_dir, &config.site_root)?;
    }
    // Brotli and gzip copies, sent to browsers that accept them (1.4 MB of wasm → ~0.4 MB).
    let status = Command::new(&server)
        .arg("precompress")
        .arg(&config.site_root)
        .status()
        .with_context(|| format!("running {}", server.display()))?;
    if !status.success() {
        bail!("{} precompress failed ({status})", server.display());
    }
    println!(
        "site: {} built in {:.1} s (assets named .{hash}.)",
        config.site_root.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The placeholder the split loader's name carries (leptos's `__wasm_split.{hash}.js`): the
/// main wasm imports from it by that name, so it is replaced, at the same length, in every file.
const SPLIT_PLACEHOLDER: &str = "______________________";

/// Names the bundle's files after their content, so the server can let browsers keep them for
/// a year (`Cache-Control: immutable`): a new build has new names, and pages name the new ones.
///
/// One hash of the whole bundle, 22 characters (the length of the split loader's placeholder),
/// is put into every name: `flowscope.<hash>.js`, `.wasm`, `.css`, the split loader and manifest,
/// and every lazily loaded chunk; the references between them are rewritten to match. The
/// hashes go to `pkg/hash.txt` in the form leptos's `hash-files` reads (`js: <hash>`, …); the
/// server turns hashing on when that file is there. Returns the hash.
fn fingerprint(config: &Config, pkg: &Path) -> Result<String> {
    use std::hash::{Hash, Hasher};
    let mut files: Vec<PathBuf> = std::fs::read_dir(pkg)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    let (mut a, mut b) = (
        std::hash::DefaultHasher::new(),
        std::hash::DefaultHasher::new(),
    );
    b.write_u8(0x5a);
    for file in &files {
        let bytes = std::fs::read(file)?;
        file.file_name().hash(&mut a);
        bytes.hash(&mut a);
        file.file_name().hash(&mut b);
        bytes.hash(&mut b);
    }
    let hash =
        format!("{:016x}{:016x}", a.finish(), b.finish())[..SPLIT_PLACEHOLDER.len()].to_string();
    let name = &config.output_name;
    let chunks: Vec<String> = files
        .iter()
        .filter(|p| p.extension().is_some_and(|x| x == "wasm"))
        .filter_map(|p| p.file_stem()?.to_str().map(str::to_owned))
        .filter(|stem| stem != name)
        .collect();
    let loader = format!("__wasm_split.{SPLIT_PLACEHOLDER}.js");
    let manifest = "__wasm_split_manifest.json";
    // Every reference, in every file (the wasm binaries included: same-length replacements).
    let mut swaps: Vec<(String, String)> =
        vec![(loader.clone(), format!("__wasm_split.{hash}.js"))];
    swaps.push((format!("./{name}.js\""), format!("./{name}.{hash}.js\"")));
    swaps.push((format!("./{name}.js'"), format!("./{name}.{hash}.js'")));
    for chunk in &chunks {
        swaps.push((
            format!("./{chunk}.wasm\""),
            format!("./{chunk}.{hash}.wasm\""),
        ));
        // The manifest lists chunks without the extension.
        swaps.push((format!("\"{chunk}\""), format!("\"{chunk}.{hash}\"")));
    }
    for file in &files {
        let ext = file.extension().and_then(|x| x.to_str()).unwrap_or("");
        if !matches!(ext, "js" | "json" | "wasm") {
            continue;
        }
        let bytes = std::fs::read(file)?;
        let mut out = bytes.clone();
        for (from, to) in &swaps {
            // Only the loader's name may appear inside wasm, and it keeps its length.
            if ext == "wasm" && from != &loader {
                continue;
            }
            out = replace_bytes(&out, from.as_bytes(), to.as_bytes());
        }
        if out != bytes {
            std::fs::write(file, out)?;
        }
    }
    let renamed = |from: &str, to: String| -> Result<()> {
        std::fs::rename(pkg.join(from), pkg.join(&to))
            .with_context(|| format!("renaming {from} to {to}"))
    };
    for ext in ["js", "wasm", "css"] {
        renamed(&format!("{name}.{ext}"), format!("{name}.{hash}.{ext}"))?;
    }
    if pkg.join(&loader).exists() {
        renamed(&loader, format!("__wasm_split.{hash}.js"))?;
        renamed(manifest, format!("__wasm_split_manifest.{hash}.json"))?;
    }
    for chunk in &chunks {
        renamed(&format!("{chunk}.wasm"), format!("{chunk}.{hash}.wasm"))?;
    }
    std::fs::write(
        pkg.join("hash.txt"),
        ["js", "wasm", "css", "split", "manifest"]
            .iter()
            .map(|k| format!("{k}: {hash}\n"))
            .collect::<String>(),
    )?;
    Ok(hash)
}

/// `haystack` with every `from` replaced by `to`.
fn replace_bytes(haystack: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(haystack.len());
    let mut i = 0;
    while i < haystack.len() {
        if haystack[i..].starts_with(from) {
            out.extend_from_slice(to);
            i += from.len();
        } else {
            out.push(haystack[i]);
            i += 1;
        }
    }
    out
}

fn check_wasm_bindgen(lock: &Path) -> Result<()> {
    let text =
        std::fs::read_to_string(lock).with_context(|| format!("reading {}", lock.display()))?;
    let doc: toml::Value =
        toml::from_str(&text).with_context(|| format!("parsing {}", lock.display()))?;
    let locked = doc
        .get("package")
        .and_then(|p| p.as_array())
        .into_iter()
        .flatten()
        .find(|p| p.get("name").and_then(|n| n.as_str()) == Some("wasm-bindgen"))
        .and_then(|p| p.get("version"))
        .and_then(|v| v.as_str())
        .context("the workspace's Cargo.lock has no wasm-bindgen")?;
    if locked != WASM_BINDGEN {
        bail!(
            "the app links wasm-bindgen {locked} but this builder binds with {WASM_BINDGEN}: \
             pin wasm-bindgen-cli-support = \"={locked}\" in site/Cargo.toml and WASM_BINDGEN \
             in site/src/main.rs"
        );
    }
    Ok(())
}

impl Config {
    fn read(manifest: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(manifest)
            .with_context(|| format!("reading {}", manifest.display()))?;
        let doc: toml::Value =
            toml::from_str(&text).with_context(|| format!("parsing {}", manifest.display()))?;
        let table = doc
            .get("workspace")
            .and_then(|w| w.get("metadata"))
            .and_then(|m| m.get("leptos"))
            .and_then(|l| l.as_array())
            .and_then(|projects| projects.first())
            .context("Cargo.toml has no [[workspace.metadata.leptos]] table")?;
        let text = |key: &str| -> Result<String> {
            table
                .get(key)
                .and_then(|v| v.as_str())
                .map(str::to_owned)
                .with_context(|| format!("[[workspace.metadata.leptos]] needs `{key}`"))
        };
        Ok(Config {
            output_name: text("output-name")?,
            site_root: text("site-root")?.into(),
            pkg_dir: text("site-pkg-dir")?,
            style_file: text("style-file")?.into(),
            assets_dir: text("assets-dir")?.into(),
            lib_package: text("lib-package")?,
            lib_features: table
                .get("lib-features")
                .and_then(|v| v.as_array())
                .map(|a| {
                    a.iter()
                        .filter_map(|f| f.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default(),
            lib_default_features: table
                .get("lib-default-features")
                .and_then(|v| v.as_bool())
                .unwrap_or(true),
            lib_profile_release: text("lib-profile-release")
                .unwrap_or_else(|_| "release".to_owned()),
        })
    }
}

/// The caller's RUSTFLAGS, plus `--cfg erase_components` in release (see the top of this file).
fn rustflags(release: bool) -> String {
    let mut flags = std::env::var("RUSTFLAGS").unwrap_or_default();
    if release {
        flags.push_str(" --cfg erase_components");
    }
    flags.trim().to_owned()
}

/// A `cargo` for the main workspace, without what `cargo run` set for this process: build
/// scripts that watch those variables (ring watches `CARGO_PKG_NAME`) would see them change and
/// recompile, and the server `cargo test` built would not be reused.
fn cargo() -> Command {
    let mut cargo = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    for (name, _) in std::env::vars_os() {
        let Some(name) = name.to_str() else { continue };
        if name.starts_with("CARGO_PKG_")
            || matches!(
                name,
                "CARGO_MANIFEST_DIR"
                    | "CARGO_MANIFEST_PATH"
                    | "CARGO_MANIFEST_LINKS"
                    | "CARGO_CRATE_NAME"
                    | "CARGO_BIN_NAME"
                    | "CARGO_PRIMARY_PACKAGE"
                    | "CARGO_RUSTC_CURRENT_DIR"
            )
        {
            cargo.env_remove(name);
        }
    }
    cargo
}

/// `cargo build` of the `flowscope` binary; returns its path.
fn compile_server(workspace: &Path, release: bool, rustflags: &str) -> Result<PathBuf> {
    let mut cargo = cargo();
    cargo.args(["build", "--package=flowscope", "--bin=flowscope"]);
    if release {
        cargo.arg("--release");
    }
    let status = cargo
        .env("RUSTFLAGS", rustflags)
        .status()
        .context("running cargo")?;
    if !status.success() {
        bail!("compiling the server failed ({status})");
    }
    Ok(target_dir(workspace)
        .join(if release { "release" } else { "debug" })
        .join("flowscope"))
}

/// `cargo build` of the app library for wasm32; returns the `.wasm` it wrote.
fn compile_wasm(
    config: &Config,
    workspace: &Path,
    release: bool,
    rustflags: &str,
) -> Result<PathBuf> {
    let target_dir = front_target_dir(workspace);
    let profile = if release {
        config.lib_profile_release.as_str()
    } else {
        "dev"
    };
    let mut cargo = cargo();
    cargo
        .args(["build", "--lib", "--target=wasm32-unknown-unknown"])
        .arg(format!("--package={}", config.lib_package))
        .arg(format!("--profile={profile}"))
        .arg("--target-dir")
        .arg(&target_dir);
    if !config.lib_default_features {
        cargo.arg("--no-default-features");
    }
    if !config.lib_features.is_empty() {
        cargo.arg(format!("--features={}", config.lib_features.join(",")));
    }
    // The splitter needs the linker's relocations.
    cargo.env(
        "RUSTFLAGS",
        format!("{rustflags} -Clink-args=--emit-relocs").trim(),
    );
    let status = cargo.status().context("running cargo")?;
    if !status.success() {
        bail!("compiling {} to wasm failed ({status})", config.lib_package);
    }
    let dir = if profile == "dev" { "debug" } else { profile };
    let wasm = target_dir
        .join("wasm32-unknown-unknown")
        .join(dir)
        .join(format!("{}.wasm", config.lib_package.replace('-', "_")));
    if !wasm.exists() {
        bail!("cargo succeeded but wrote no {}", wasm.display());
    }
    Ok(wasm)
}

/// Splits the lazily loaded code (`#[lazy]` routes) into chunks in `pkg`, the JS that loads
/// them, and a manifest the server reads to prefetch a route's chunks; returns the main module.
fn split(config: &Config, wasm: &Path, pkg: &Path) -> Result<PathBuf> {
    let input = std::fs::read(wasm).with_context(|| format!("reading {}", wasm.display()))?;
    let stem = wasm.file_stem().and_then(|s| s.to_str()).unwrap_or("app");
    let main_out = wasm.with_file_name(format!("{stem}_split.wasm"));
    let main_module = format!("./{}.js", config.output_name);
    let mut options = wasm_split_cli_support::Options::new(&input);
    options.output_dir = pkg;
    options.main_out_path = &main_out;
    options.main_module = &main_module;
    // The name leptos looks for (`leptos::hydration`) when files are not hashed.
    options.link_name = "./__wasm_split.______________________.js";
    let split = wasm_split_cli_support::transform(options)
        .map_err(|e| anyhow::anyhow!("splitting {}: {e}", wasm.display()))?;
    std::fs::write(
        pkg.join("__wasm_split_manifest.json"),
        serde_json::to_string_pretty(&split.prefetch_map)?,
    )?;
    Ok(main_out)
}

/// wasm-bindgen's `--target web --keep-lld-exports --no-demangle`, as cargo-leptos runs it
/// (the lld exports are what the split chunks link against); then the `_bg` suffix is dropped,
/// the name leptos's hydration script asks for.
fn bindgen(config: &Config, main_wasm: &Path, pkg: &Path) -> Result<()> {
    wasm_bindgen_cli_support::Bindgen::new()
        .input_path(main_wasm)
        .out_name(&config.output_name)
        .web(true)?
        .typescript(true)
        .omit_default_module_path(false)
        .keep_lld_exports(true)
        .demangle(false)
        .generate(pkg)
        .map_err(|e| anyhow::anyhow!("wasm-bindgen on {}: {e}", main_wasm.display()))?;
    let name = &config.output_name;
    std::fs::rename(
        pkg.join(format!("{name}_bg.wasm")),
        pkg.join(format!("{name}.wasm")),
    )?;
    Ok(())
}

/// `wasm-opt -Oz` on every wasm file in `pkg`, two at a time (npm's binaryen: Debian's breaks
/// hydration, see BUILD-NOTES).
fn optimise(pkg: &Path) -> Result<()> {
    let files: Vec<PathBuf> = std::fs::read_dir(pkg)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "wasm"))
        .collect();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    std::thread::scope(|scope| {
        let chunks: Vec<_> = files.chunks(files.len().div_ceil(threads).max(1)).collect();
        let handles: Vec<_> = chunks
            .into_iter()
            .map(|chunk| {
                scope.spawn(move || -> Result<()> {
                    for file in chunk {
                        let status = Command::new("wasm-opt")
                            .args([
                                "-Oz",
                                "--enable-bulk-memory",
                                "--enable-nontrapping-float-to-int",
                            ])
                            .arg(file)
                            .arg("-o")
                            .arg(file)
                            .status()
                            .context("running wasm-opt (scripts/setup.sh installs it)")?;
                        if !status.success() {
                            bail!("wasm-opt on {} failed ({status})", file.display());
                        }
                    }
                    Ok(())
                })
            })
            .collect();
        handles.into_iter().try_for_each(|h| {
            h.join()
                .map_err(|_| anyhow::anyhow!("a wasm-opt thread panicked"))?
        })
    })
}

fn copy_file(from: &Path, to: &Path) -> Result<()> {
    std::fs::copy(from, to)
        .with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
    Ok(())
}

/// Copies `from`'s tree into `to` (cargo-leptos's assets step: `public/` lands at the site root).
fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            copy_file(&entry.path(), &target)?;
        }
    }
    Ok(())
}
