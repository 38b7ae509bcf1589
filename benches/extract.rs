//! Criterion bench: HTML → main text throughput (bytes of HTML/s) on a
//! synthetic page with the usual chrome (scripts, styles, navigation,
//! utility-class soup, footer). Run: `cargo bench --bench extract`.
//! The quality and peer comparison on real pages is
//! `benches/python/bench_extract.py`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use fastllm_core::extract::extract_str;
use std::hint::black_box;

fn page() -> String {
    let mut html = String::from(
        "<!doctype html><html lang=en><head><title>A page</title>\
         <style>.a{color:red}.b{margin:0 auto;display:flex}</style>\
         <script>window.dataLayer=[];function f(a,b){return a<b?a:b}</script></head><body>\
         <div class=\"cookie-banner fixed bottom-0 w-full\">We use cookies.</div>\
         <header class=\"site-header flex items-center\"><nav><ul>",
    );
    for i in 0..40 {
        html.push_str(&format!(
            "<li class=\"menu-item px-2\"><a href=\"/s/{i}\">Section {i}</a></li>"
        ));
    }
    html.push_str("</ul></nav></header><main><article class=\"post-content prose\"><h1>Title</h1>");
    for i in 0..60 {
        html.push_str(&format!(
            "<p class=\"text-base leading-7 mt-4\">Paragraph {i} says something, with commas, \
             a <a href=\"/l/{i}\">link</a> and <em>emphasis</em>, long enough to read as prose.</p>"
        ));
        if i % 10 == 0 {
            html.push_str("<ul><li>one item</li><li>another item</li></ul><h2>Subhead</h2>");
        }
    }
    html.push_str("</article></main><aside class=sidebar>");
    for i in 0..30 {
        html.push_str(&format!(
            "<div class=\"card\"><a href=\"/r/{i}\">Related story {i}</a></div>"
        ));
    }
    html.push_str("</aside><footer class=\"site-footer\">© 2026</footer>");
    html.push_str("<script>(function(){var x=document.querySelectorAll('a');for(var i=0;i<x.length;i++){}})()</script>");
    html.push_str("</body></html>");
    html
}

fn bench(c: &mut Criterion) {
    let html = page();
    let mut g = c.benchmark_group("extract");
    g.throughput(Throughput::Bytes(html.len() as u64));
    g.bench_function("synthetic_article", |b| {
        b.iter(|| extract_str(black_box(&html)))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
