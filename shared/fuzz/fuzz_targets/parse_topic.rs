//! Untrusted topic strings: parsing never panics and what parses rebuilds
//! to the same wire topic.
#![no_main]
use dcmms_shared::Topic;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(t) = Topic::parse(s) {
            assert_eq!(t.wire(), s);
        }
    }
});
