//! Untrusted block payloads (compressed columnar samples): decoding never
//! panics; whatever decodes round-trips through the encoder bit-exactly.
#![no_main]
use dcmms_shared::block::{decode_samples, encode_samples};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Raw bytes, and the same bytes as a valid zstd frame so the fuzzer
    // reaches the columnar decoder.
    let framed = zstd::bulk::compress(data, 1).unwrap_or_default();
    for input in [data, framed.as_slice()] {
        if let Ok(samples) = decode_samples(input) {
            let enc = encode_samples(&samples).expect("decoded samples re-encode");
            let back = decode_samples(&enc).expect("re-encoded block decodes");
            assert_eq!(back.len(), samples.len());
            for (a, b) in back.iter().zip(&samples) {
                assert_eq!(a.value.to_bits(), b.value.to_bits());
            }
        }
    }
});
