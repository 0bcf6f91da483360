//! The maintenance (CMMS) routes: work orders and preventive maintenance
//! ([`work`]), and the registers they refer to, sites, assets, parts, costs
//! and CSV onboarding ([`registry`]). Handlers load, call the domain in
//! `dcmms_shared::cmms` through `store::cmms`, audit, and commit, in one
//! transaction; they never decide a rule themselves.

pub(crate) mod registry;
pub(crate) mod work;
