//! The console's static files, embedded in the binary: our stylesheet and script, and the
//! vendored htmx and uPlot (their licences beside them in `assets/vendor/`). Each is served
//! under a name with its content's checksum, cached for a year: a new build gets new names; gzipped
//! (once, at first use) for a browser that accepts it. Only these files are compressed: a page
//! carries its session's CSRF token next to text an attacker chose, which compression would leak
//! (BREACH).

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const ASSETS: &[Asset] = &[
    Asset {
        name: "console.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../../../assets/console.css"),
    },
    Asset {
        name: "console.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../../assets/console.js"),
    },
    Asset {
        name: "htmx.min.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../../assets/vendor/htmx-2.0.11.min.js"),
    },
    Asset {
        name: "uPlot.min.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../../assets/vendor/uPlot-1.6.32.iife.min.js"),
    },
    Asset {
        name: "uPlot.min.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../../../assets/vendor/uPlot-1.6.32.min.css"),
    },
    Asset {
        name: "htmx-LICENSE.txt",
        content_type: "text/plain; charset=utf-8",
        body: include_bytes!("../../../assets/vendor/htmx-LICENSE"),
    },
    Asset {
        name: "uPlot-LICENSE.txt",
        content_type: "text/plain; charset=utf-8",
        body: include_bytes!("../../../assets/vendor/uPlot-LICENSE"),
    },
];

/// `name` → `name-<crc32>.<ext>` of the embedded content, and the content gzipped.
static VERSIONED: LazyLock<Vec<(String, &'static Asset, Vec<u8>)>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|a| {
            let crc = crc32fast::hash(a.body);
            let (stem, ext) = a.name.rsplit_once('.').unwrap_or((a.name, ""));
            (format!("{stem}-{crc:08x}.{ext}"), a, gzip(a.body))
        })
        .collect()
});

fn gzip(body: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut z = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    // Writing to memory cannot fail.
    let _ = z.write_all(body);
    z.finish().unwrap_or_default()
}

/// The URL of an asset by its plain name.
pub(super) fn url(name: &str) -> String {
    VERSIONED
        .iter()
        .find(|(_, a, _)| a.name == name)
        .map(|(v, _, _)| format!("/assets/{v}"))
        .unwrap_or_else(|| format!("/assets/{name}"))
}

/// `GET /assets/{file}`: by versioned name (cached for a year, gzipped when accepted) or plain
/// name (not cached).
pub(super) async fn serve(Path(file): Path<String>, headers: HeaderMap) -> Response {
    let gzip_ok = headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|e| e.split(';').next().is_some_and(|e| e.trim() == "gzip"));
    if let Some((_, asset, gz)) = VERSIONED.iter().find(|(v, _, _)| *v == file) {
        let cache = (header::CACHE_CONTROL, "public, max-age=31536000, immutable");
        let content_type = (header::CONTENT_TYPE, asset.content_type);
        let vary = (header::VARY, "Accept-Encoding");
        return if gzip_ok {
            let encoding = (header::CONTENT_ENCODING, "gzip");
            ([content_type, cache, vary, encoding], gz.clone()).into_response()
        } else {
            ([content_type, cache, vary], asset.body).into_response()
        };
    }
    match ASSETS.iter().find(|a| a.name == file) {
        Some(a) => (
            [
                (header::CONTENT_TYPE, a.content_type),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            a.body,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such file\n").into_response(),
    }
}
