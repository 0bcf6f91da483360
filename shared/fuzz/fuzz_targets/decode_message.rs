//! Untrusted MQTT payloads: decoding never panics, and whatever decodes
//! re-encodes to a payload that decodes to the same message.
#![no_main]
use dcmms_shared::wire::Message;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The raw bytes, and the same bytes behind a valid envelope header so the
    // fuzzer spends its time in the body decoders.
    let mut framed = b"DC\x01".to_vec();
    framed.extend_from_slice(data);
    for input in [data, framed.as_slice()] {
        if let Ok(msg) = Message::decode(input) {
            let again = Message::decode(&msg.encode()).expect("re-encoded message decodes");
            assert_eq!(again, msg);
        }
    }
});
