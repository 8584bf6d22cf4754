//! HTML for the console and the setup page, written with maud's `html!`: the page layout,
//! tables, badges and the deprovisioning-latency chart (inline SVG: no script, no external
//! assets). Every value spliced into a page is escaped by construction; markup that is not
//! escaped would have to be wrapped in `PreEscaped`, which no page uses.

use maud::{DOCTYPE, Markup, Render, html};

/// The stylesheet, embedded in the binary.
pub const CSS: &str = include_str!("console.css");

/// Percent-encodes a query or path value.
pub fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// A whole page: title, navigation (when signed in) and body.
pub fn page(title: &str, nav: Option<Markup>, body: Markup) -> String {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Roster" }
                link rel="icon" href="/favicon.svg" type="image/svg+xml";
                link rel="stylesheet" href="/console/assets/console.css";
            }
            body {
                header {
                    a class="brand" href="/console" { "Roster" }
                    @if let Some(nav) = nav { (nav) }
                }
                main { h1 { (title) } (body) }
            }
        }
    }
    .into_string()
}

/// A table: header cells (text) and rows of cells.
pub fn table(head: &[&str], rows: &[Vec<Markup>]) -> Markup {
    html! {
        @if rows.is_empty() {
            p class="empty" { "Nothing here yet." }
        } @else {
            table {
                thead { tr { @for h in head { th { (h) } } } }
                tbody { @for r in rows { tr { @for c in r { td { (c) } } } } }
            }
        }
    }
}

/// `—` for nothing, else the text.
pub fn opt(s: Option<&str>) -> Markup {
    s.unwrap_or("—").render()
}

/// A small status badge.
pub fn badge(text: &str, kind: &str) -> Markup {
    html! { span class={ "badge " (kind) } { (text) } }
}

/// One deprovisioning: what the chart plots (milliseconds after the request arrived).
pub struct LatencyPoint {
    pub label: String,
    pub committed_ms: f64,
    pub webhook_ms: Option<f64>,
}

/// A coordinate of the chart, to a tenth.
fn at(v: f64) -> String {
    format!("{v:.1}")
}

/// A bar chart, oldest left: per deprovisioning, the time to revoke access (commit) and to
/// the first webhook delivered, on a log scale from 0.1 ms to 100 s.
pub fn latency_chart(points: &[LatencyPoint]) -> Markup {
    if points.is_empty() {
        return html! { p class="empty" { "No deactivations or deletions yet." } };
    }
    const W: f64 = 720.0;
    const H: f64 = 220.0;
    const LEFT: f64 = 56.0;
    let scale = |ms: f64| -> f64 {
        // log10 from 0.1 ms (-1) to 100 s (5).
        let v = ms.max(0.1).log10().clamp(-1.0, 5.0);
        H - 20.0 - (v + 1.0) / 6.0 * (H - 40.0)
    };
    let n = points.len() as f64;
    let slot = (W - LEFT - 10.0) / n;
    let bar = (slot / 2.0 - 1.0).clamp(1.0, 14.0);
    let base = scale(0.1);
    let ticks = [
        (0.1, "0.1 ms"),
        (1.0, "1 ms"),
        (10.0, "10 ms"),
        (100.0, "100 ms"),
        (1000.0, "1 s"),
        (10000.0, "10 s"),
        (100000.0, "100 s"),
    ];
    // SVG elements are closed explicitly (`{}`): HTML has no void elements in SVG.
    html! {
        svg class="chart" role="img" aria-label="Deprovisioning latency"
            viewBox={ "0 0 " (W) " " (H) } width=(W) height=(H) {
            @for (ms, label) in ticks {
                @let y = scale(ms);
                line x1=(LEFT) x2=(W) y1=(at(y)) y2=(at(y)) class="grid" {}
                text x=(at(LEFT - 4.0)) y=(at(y + 4.0)) class="axis" { (label) }
            }
            @for (i, p) in points.iter().enumerate() {
                @let x = LEFT + i as f64 * slot + 2.0;
                @let y = scale(p.committed_ms);
                rect class="revoke" x=(at(x)) y=(at(y)) width=(at(bar))
                    height=(at((base - y).max(1.0))) {
                    title {
                        (p.label) ": access revoked after " (format!("{:.2}", p.committed_ms)) " ms"
                    }
                }
                @if let Some(w) = p.webhook_ms {
                    @let y = scale(w);
                    rect class="webhook" x=(at(x + bar + 1.0)) y=(at(y)) width=(at(bar))
                        height=(at((base - y).max(1.0))) {
                        title { (p.label) ": webhook delivered after " (format!("{w:.2}")) " ms" }
                    }
                }
            }
        }
        p class="legend" {
            span class="key revoke" {}
            " request → sessions and tokens revoked (committed) "
            span class="key webhook" {}
            " request → first webhook delivered"
        }
    }
}

/// Median and 99th percentile of `xs` (nearest rank).
pub fn percentiles(xs: &[f64]) -> Option<(f64, f64)> {
    if xs.is_empty() {
        return None;
    }
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let at = |q: f64| v[((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
    Some((at(0.5), at(0.99)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_escaped_in_text_and_attributes() {
        let hostile = "<script>alert(1)</script>\"><img src=x onerror=alert(2)>&";
        let escaped = "&lt;script&gt;alert(1)&lt;/script&gt;&quot;&gt;&lt;img src=x onerror=alert(2)&gt;&amp;";
        let html = page(
            hostile,
            None,
            table(
                &[hostile],
                &[vec![opt(Some(hostile)), badge(hostile, hostile)]],
            ),
        );
        assert!(
            !html.contains("<script>") && !html.contains("<img"),
            "{html}"
        );
        assert_eq!(html.matches(escaped).count(), 6, "{html}");
        assert!(
            html.contains(&format!("<span class=\"badge {escaped}\">")),
            "{html}"
        );
    }

    #[test]
    fn percentiles_by_nearest_rank() {
        let xs: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentiles(&xs), Some((50.0, 99.0)));
        assert_eq!(percentiles(&[]), None);
    }

    #[test]
    fn the_chart_has_a_bar_per_measure() {
        let svg = latency_chart(&[
            LatencyPoint {
                label: "a".into(),
                committed_ms: 1.5,
                webhook_ms: Some(12.0),
            },
            LatencyPoint {
                label: "b<".into(),
                committed_ms: 0.7,
                webhook_ms: None,
            },
        ])
        .into_string();
        assert_eq!(svg.matches("class=\"revoke\"").count(), 2);
        assert_eq!(svg.matches("class=\"webhook\"").count(), 1);
        assert!(svg.contains("b&lt;"));
    }
}
