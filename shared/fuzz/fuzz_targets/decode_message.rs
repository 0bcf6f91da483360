//! Untrusted MQTT payloads: decoding never panics, and whatever decodes
//! re-encodes to a payload that decodes to the same message.
#![no_main]
use dcmms_shared::wire::Message;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(msg) = Message::decode(data) {
        let again = Message::decode(&msg.encode()).expect("re-encoded message decodes");
        assert_eq!(again, msg);
    }
});
