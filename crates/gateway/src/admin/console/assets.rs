//! The console's static files, embedded in the binary: our stylesheet and script, and the
//! vendored htmx and uPlot (their licences beside them in `assets/vendor/`). Each is served
//! under a name with its content's checksum, cached for a year: a new build gets new names.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{StatusCode, header};
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

/// `name` → `name-<crc32>.<ext>` of the embedded content.
static VERSIONED: LazyLock<Vec<(String, &'static Asset)>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|a| {
            let crc = crc32fast::hash(a.body);
            let (stem, ext) = a.name.rsplit_once('.').unwrap_or((a.name, ""));
            (format!("{stem}-{crc:08x}.{ext}"), a)
        })
        .collect()
});

/// The URL of an asset by its plain name.
pub(super) fn url(name: &str) -> String {
    VERSIONED
        .iter()
        .find(|(_, a)| a.name == name)
        .map(|(v, _)| format!("/assets/{v}"))
        .unwrap_or_else(|| format!("/assets/{name}"))
}

/// `GET /assets/{file}`: by versioned name (cached for a year) or plain name (not cached).
pub(super) async fn serve(Path(file): Path<String>) -> Response {
    let (asset, immutable) = match VERSIONED.iter().find(|(v, _)| *v == file) {
        Some((_, a)) => (*a, true),
        None => match ASSETS.iter().find(|a| a.name == file) {
            Some(a) => (a, false),
            None => return (StatusCode::NOT_FOUND, "no such file\n").into_response(),
        },
    };
    let cache = if immutable {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    (
        [
            (header::CONTENT_TYPE, asset.content_type),
            (header::CACHE_CONTROL, cache),
        ],
        asset.body,
    )
        .into_response()
}
