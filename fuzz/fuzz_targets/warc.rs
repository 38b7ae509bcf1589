//! The WARC/WET reader on arbitrary bytes (plain or gzip), each document it
//! returns then going through the extractor as the pipeline does. Must never
//! panic or loop, and its counts must add up.
#![no_main]

use std::io::Cursor;

use libfuzzer_sys::fuzz_target;

use fastllm_core::extract::extract_bytes;
use fastllm_core::source::{Kind, Options, WarcReader};

fuzz_target!(|data: &[u8]| {
    for kind in [Kind::Warc, Kind::Wet] {
        let mut opts = Options::new(kind);
        // Small, so that the too-large path is reachable from small inputs.
        opts.max_record_bytes = 4096;
        let mut reader = WarcReader::new(Cursor::new(data), opts).expect("in-memory reads cannot fail");
        let mut docs = 0u64;
        while let Some(doc) = reader.next_doc().expect("in-memory reads cannot fail") {
            docs += 1;
            assert!(!doc.payload.is_empty());
            match kind {
                Kind::Warc => {
                    let _ = extract_bytes(&doc.payload, Some(&doc.url));
                }
                Kind::Wet => assert!(std::str::from_utf8(&doc.payload).is_ok()),
            }
        }
        let counts = reader.counts();
        assert_eq!(counts.docs, docs);
        // A document is a well-formed record.
        assert!(counts.docs <= counts.records);
    }
});
