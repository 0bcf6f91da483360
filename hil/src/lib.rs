//! dcmms-hil
