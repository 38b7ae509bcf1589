//! HTML extraction on arbitrary bytes: as bytes (charset sniffing, decoding)
//! and, when they are UTF-8, as text. Must never panic, whatever the page.
//! An input whose first line is short and starts with "http" gives the URL.
#![no_main]

use libfuzzer_sys::fuzz_target;

use fastllm_core::extract::{extract_bytes, extract_str};

fuzz_target!(|data: &[u8]| {
    let mut url = Some("http://example.com/page");
    let mut data = data;
    if let Some(nl) = data.iter().take(200).position(|&b| b == b'\n') {
        if let Ok(u) = std::str::from_utf8(&data[..nl]) {
            if u.starts_with("http") {
                url = Some(u);
                data = &data[nl + 1..];
            }
        }
    }
    let a = extract_bytes(data, url);
    if let Ok(s) = std::str::from_utf8(data) {
        let b = extract_str(s);
        // Text in, text out: what comes back is always non-empty when Some.
        for t in [&a.text, &b.text].into_iter().flatten() {
            assert!(!t.trim().is_empty());
        }
    }
});
