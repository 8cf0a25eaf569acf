//! PNG copies of the report's charts, for people who paste charts into chat, slides or tickets rather
//! than open an HTML file. Each chart is the report's own SVG, rendered by `resvg` (pure Rust) with the
//! report's chart styles inlined; text uses the machine's fonts (DejaVu Sans or Liberation Sans on
//! Debian: `fonts-dejavu-core`), and without any font the charts are drawn without their text, with a
//! warning saying so.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use resvg::{tiny_skia, usvg};

use crate::PipelineError;

/// The chart rules of the report's stylesheet, for a chart outside the page.
const CHART_STYLE: &str = "text{font-family:'DejaVu Sans','Liberation Sans',Arial,sans-serif}\
.title{font-size:14px;font-weight:600;fill:#222}.tick{font-size:11px;fill:#555}.axis{font-size:12px;fill:#333}\
.legend{font-size:12px;fill:#333}.grid{stroke:#eee}";

/// Pixels per SVG unit: charts are 820 units wide, so PNGs are 1,640 pixels, sharp on high-density screens.
const SCALE: f32 = 2.0;

fn fonts() -> Arc<usvg::fontdb::Database> {
    static FONTS: OnceLock<Arc<usvg::fontdb::Database>> = OnceLock::new();
    FONTS
        .get_or_init(|| {
            let mut db = usvg::fontdb::Database::new();
            db.load_system_fonts();
            Arc::new(db)
        })
        .clone()
}

/// The `<svg class="chart">` elements of `html`, in page order.
pub fn charts(html: &str) -> Vec<&str> {
    let mut found = Vec::new();
    let mut rest = html;
    while let Some(start) = rest.find("<svg class=\"chart\"") {
        let Some(len) = rest[start..].find("</svg>") else { break };
        let end = start + len + "</svg>".len();
        found.push(&rest[start..end]);
        rest = &rest[end..];
    }
    found
}

/// A file name from a chart's title: `03-equity-starting-at-1.png`.
fn file_name(index: usize, svg: &str) -> String {
    let title = svg
        .split_once("aria-label=\"")
        .and_then(|(_, rest)| rest.split_once('"'))
        .map_or("chart", |(title, _)| title)
        .replace("&amp;", "and");
    let mut slug = String::new();
    for c in title.chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.ends_with('-') && !slug.is_empty() {
            slug.push('-');
        }
    }
    let slug = slug.trim_end_matches('-');
    let slug: String = slug.chars().take(60).collect();
    format!("{:02}-{}.png", index + 1, slug.trim_end_matches('-'))
}

/// Renders one chart's SVG to PNG bytes.
pub fn render(svg: &str) -> Result<Vec<u8>, String> {
    // The page's stylesheet does not reach a chart outside it: inline the chart rules, and a white
    // background (the page's) behind everything.
    let open_end = svg.find('>').ok_or("not an SVG element")? + 1;
    let standalone = format!(
        "{}<style>{CHART_STYLE}</style><rect width=\"100%\" height=\"100%\" fill=\"#fff\"/>{}",
        &svg[..open_end],
        &svg[open_end..]
    );
    let options = usvg::Options { fontdb: fonts(), ..usvg::Options::default() };
    let tree = usvg::Tree::from_str(&standalone, &options).map_err(|e| e.to_string())?;
    let size = tree.size();
    let (width, height) = ((size.width() * SCALE).ceil() as u32, (size.height() * SCALE).ceil() as u32);
    let mut pixmap = tiny_skia::Pixmap::new(width, height).ok_or("empty chart")?;
    resvg::render(&tree, tiny_skia::Transform::from_scale(SCALE, SCALE), &mut pixmap.as_mut());
    pixmap.encode_png().map_err(|e| e.to_string())
}

/// Writes every chart of `html` as a PNG into `dir` (created); returns the files and warnings.
pub fn write_charts(html: &str, dir: &Path) -> Result<(Vec<PathBuf>, Vec<String>), PipelineError> {
    let charts = charts(html);
    let mut warnings = Vec::new();
    if charts.is_empty() {
        return Ok((Vec::new(), warnings));
    }
    std::fs::create_dir_all(dir).map_err(|e| PipelineError::io(dir, e))?;
    if fonts().is_empty() {
        warnings.push(
            "no system font found: the PNG charts have no text (apt-get install fonts-dejavu-core); report.html is \
             complete"
                .to_string(),
        );
    }
    let mut written = Vec::with_capacity(charts.len());
    for (i, svg) in charts.iter().enumerate() {
        let path = dir.join(file_name(i, svg));
        let png = render(svg).map_err(|e| PipelineError::stage("report", format!("{}: {e}", path.display())))?;
        std::fs::write(&path, png).map_err(|e| PipelineError::io(&path, e))?;
        written.push(path);
    }
    Ok((written, warnings))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_are_found_in_page_order_and_named_after_their_titles() {
        let html =
            "<p>x</p><svg class=\"chart\" aria-label=\"Equity (starting at 1)\"><rect/></svg><svg>not a chart</svg>\
                    <svg class=\"chart\" aria-label=\"Out-of-sample roc_auc per fold &amp; more\"></svg>";
        let found = charts(html);
        assert_eq!(found.len(), 2);
        assert_eq!(file_name(0, found[0]), "01-equity-starting-at-1.png");
        assert_eq!(file_name(1, found[1]), "02-out-of-sample-roc-auc-per-fold-and-more.png");
    }

    #[test]
    fn a_chart_renders_to_a_png_of_twice_its_size_with_its_marks() {
        let svg = "<svg class=\"chart\" viewBox=\"0 0 100 50\" width=\"100\" height=\"50\" xmlns=\"http://www.w3.org/2000/svg\">\
                   <rect x=\"10\" y=\"10\" width=\"30\" height=\"30\" fill=\"#ff0000\"/><text x=\"50\" y=\"30\" class=\"title\">T</text></svg>";
        let png = render(svg).unwrap();
        assert!(png.starts_with(b"\x89PNG"));
        let pixmap = tiny_skia::Pixmap::decode_png(&png).unwrap();
        assert_eq!((pixmap.width(), pixmap.height()), (200, 100));
        // Inside the red square, red; outside, the white background.
        let at = |x: u32, y: u32| pixmap.pixel(x, y).unwrap();
        assert_eq!((at(50, 50).red(), at(50, 50).green()), (255, 0));
        assert_eq!((at(5, 5).red(), at(5, 5).green(), at(5, 5).blue()), (255, 255, 255));
    }
}
