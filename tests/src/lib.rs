//! dcmms-e2e
