//! The site's files (`/pkg/*`: the wasm bundle, its JavaScript and CSS): compressed once when
//! built, served compressed to whoever accepts it, and revalidated instead of re-sent.
//!
//! `flowscope precompress DIR` (run by `scripts/run.sh` and `scripts/test.sh` after the build)
//! writes a brotli (`.br`) and a gzip (`.gz`) file beside each compressible file;
//! [`service`] picks one by `Accept-Encoding`. The site builder names the bundle's files after
//! their content (`flowscope.<hash>.wasm`), so those are sent `immutable` and a warm load asks
//! for none of them; other files are revalidated (`no-cache`, 304 when unchanged).

use std::io::Write;
use std::path::Path;

use axum::http::{header, HeaderValue};
use tower_http::services::ServeDir;

/// What a precompression did.
#[derive(Debug, Default, PartialEq)]
pub struct Precompressed {
    /// Files compressed now.
    pub files: usize,
    /// Files whose compressed copies were already newer than them.
    pub current: usize,
    /// Bytes before, and in brotli and gzip after (of the files compressed now).
    pub bytes: u64,
    pub brotli: u64,
    pub gzip: u64,
}

fn compressible(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("wasm" | "js" | "css" | "svg" | "json" | "html" | "txt" | "map")
    )
}

/// Writes `NAME.br` and `NAME.gz` beside every compressible file under `dir` whose copies are
/// missing or older than it.
pub fn precompress(dir: &Path) -> std::io::Result<Precompressed> {
    let mut done = Precompressed::default();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for entry in std::fs::read_dir(&d)? {
            let path = entry?.path();
            if path.is_dir() {
                pending.push(path);
                continue;
            }
            if !compressible(&path) {
                continue;
            }
            let modified = std::fs::metadata(&path)?.modified()?;
            let with = |ext: &str| {
                let mut name = path.as_os_str().to_owned();
                name.push(ext);
                std::path::PathBuf::from(name)
            };
            let (br, gz) = (with(".br"), with(".gz"));
            let fresh = |p: &Path| {
                std::fs::metadata(p)
                    .and_then(|m| m.modified())
                    .is_ok_and(|m| m >= modified)
            };
            if fresh(&br) && fresh(&gz) {
                done.current += 1;
                continue;
            }
            let raw = std::fs::read(&path)?;
            let mut brotli = Vec::new();
            {
                // The best (11) for what a release build makes: done once, read by every
                // visitor. A debug bundle (14 MB) at 11 would hold the test command up ~30 s.
                let quality = if raw.len() > 4 << 20 { 5 } else { 11 };
                let mut w = brotli::CompressorWriter::new(&mut brotli, 64 * 1024, quality, 22);
                w.write_all(&raw)?;
            }
            let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
            gzip.write_all(&raw)?;
            let gzip = gzip.finish()?;
            std::fs::write(&br, &brotli)?;
            std::fs::write(&gz, &gzip)?;
            done.files += 1;
            done.bytes += raw.len() as u64;
            done.brotli += brotli.len() as u64;
            done.gzip += gzip.len() as u64;
        }
    }
    Ok(done)
}

/// Turns on leptos's hashed file names when the site builder wrote `pkg/hash.txt`, and
/// returns the stylesheet's address to match (the shell links it).
///
/// leptos reads the hash file from beside the server binary; an absolute path is read as
/// itself, so the hashes of the site actually served are the ones used.
pub fn hashed_names(
    mut options: leptos::prelude::LeptosOptions,
    pkg: &Path,
) -> (leptos::prelude::LeptosOptions, app::StyleHref) {
    let hashes = pkg.join("hash.txt");
    let css_hash = std::fs::read_to_string(&hashes).ok().and_then(|text| {
        text.lines()
            .find_map(|l| l.strip_prefix("css:").map(|h| h.trim().to_string()))
    });
    options.hash_files = css_hash.is_some();
    if options.hash_files {
        options.hash_file = std::path::absolute(&hashes)
            .unwrap_or(hashes)
            .to_string_lossy()
            .as_ref()
            .into();
    }
    let pkg_url = format!("/{}", options.site_pkg_dir.trim_matches('/'));
    let name = &options.output_name;
    let href = match css_hash {
        Some(h) => format!("{pkg_url}/{name}.{h}.css"),
        None => format!("{pkg_url}/{name}.css"),
    };
    (options, app::StyleHref(href))
}

/// Whether a file's name carries the site builder's content hash (`flowscope.<22 hex>.js`):
/// such a file never changes under its name.
pub fn is_hashed(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or_default();
    name.split('.')
        .any(|part| part.len() == 22 && part.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Serves `dir`: the brotli or gzip copy when the client accepts it (and it exists), else the
/// file. Content-hashed names are kept by browsers for a year without asking again
/// (`immutable`); the rest (images, snippets) are revalidated (`no-cache`, 304 when unchanged).
pub fn service(dir: &Path) -> axum::Router {
    axum::Router::new()
        .fallback_service(ServeDir::new(dir).precompressed_br().precompressed_gzip())
        .layer(axum::middleware::from_fn(cache_control))
}

async fn cache_control(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let hashed = is_hashed(request.uri().path());
    let mut response = next.run(request).await;
    let status = response.status();
    if status.is_success() || status == axum::http::StatusCode::NOT_MODIFIED {
        response.headers_mut().insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static(if hashed {
                "public, max-age=31536000, immutable"
            } else {
                "no-cache"
            }),
        );
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precompression_writes_smaller_copies_once_and_again_when_the_file_changes() {
        let dir = tempfile::tempdir().expect("dir");
        let wasm = dir.path().join("pkg").join("app.wasm");
        std::fs::create_dir_all(wasm.parent().expect("parent")).expect("mkdir");
        let body = "fn main() { println!(\"hello\"); } ".repeat(2000);
        std::fs::write(&wasm, &body).expect("write");
        std::fs::write(dir.path().join("pkg").join("logo.png"), b"\x89PNG").expect("write");
        let first = precompress(dir.path()).expect("precompress");
        assert_eq!(first.files, 1, "only the compressible file: {first:?}");
        assert!(
            first.brotli < first.bytes / 10 && first.gzip < first.bytes / 10,
            "{first:?}"
        );
        let mut unbrotli = Vec::new();
        brotli::BrotliDecompress(
            &mut std::fs::File::open(wasm.with_extension("wasm.br")).expect("br"),
            &mut unbrotli,
        )
        .expect("brotli");
        assert_eq!(unbrotli, body.as_bytes());
        let again = precompress(dir.path()).expect("precompress");
        assert_eq!((again.files, again.current), (0, 1));
        // A rebuilt file is compressed again.
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&wasm, "changed").expect("write");
        let changed = precompress(dir.path()).expect("precompress");
        assert_eq!(changed.files, 1);
    }
}
