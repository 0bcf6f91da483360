//! Checklists: the tasks of a work order and what was recorded for them.
//!
//! This module owns the task kinds, the validation of a recorded result
//! against its task, and the rule the state machine relies on before a work
//! order may be completed ([`Checklist::blocking_items`]: every required
//! item done, or skipped with a reason). Out-of-limit readings and failed
//! checks are findings: they are recorded and flagged, never refused,
//! because refusing them would hide exactly what maintenance needs to see.
//! Who may record results, and in which work-order state, is decided by the
//! work order ([`super::work_order`]), not here.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::ids::UserId;

/// What a task asks for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskKind {
    /// A pass/fail check.
    Check,
    /// A measured value in `unit`; outside `min`..=`max` it is flagged.
    Reading {
        unit: String,
        min: Option<f64>,
        max: Option<f64>,
    },
    /// A photo, by reference to a stored attachment.
    Photo,
    /// A document or file, by reference to a stored attachment.
    Attachment,
    /// A signature: who signed, and when.
    Signature,
}

impl TaskKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            TaskKind::Check => "check",
            TaskKind::Reading { .. } => "reading",
            TaskKind::Photo => "photo",
            TaskKind::Attachment => "attachment",
            TaskKind::Signature => "signature",
        }
    }

    /// Validates `input` against this kind and turns it into a result,
    /// flagging readings outside the limits.
    pub fn evaluate(
        &self,
        key: &str,
        input: ItemInput,
        at: OffsetDateTime,
    ) -> Result<ItemResult, ChecklistError> {
        let mismatch = |input: &ItemInput| ChecklistError::KindMismatch {
            key: key.to_owned(),
            expected: self.as_str(),
            got: input.as_str(),
        };
        match (self, input) {
            (TaskKind::Check, ItemInput::Check { passed }) => Ok(ItemResult::Check { passed }),
            (TaskKind::Reading { unit, min, max }, ItemInput::Reading { value }) => {
                if !value.is_finite() {
                    return Err(ChecklistError::ReadingNotFinite {
                        key: key.to_owned(),
                    });
                }
                let flag = match (min, max) {
                    (Some(min), _) if value < *min => Some(LimitFlag::BelowMin),
                    (_, Some(max)) if value > *max => Some(LimitFlag::AboveMax),
                    _ => None,
                };
                Ok(ItemResult::Reading {
                    value,
                    unit: unit.clone(),
                    flag,
                })
            }
            (TaskKind::Photo | TaskKind::Attachment, ItemInput::Attachment { reference }) => {
                if reference.trim().is_empty() {
                    return Err(ChecklistError::EmptyReference {
                        key: key.to_owned(),
                    });
                }
                Ok(ItemResult::Attachment { reference })
            }
            (TaskKind::Signature, ItemInput::Signature { signer }) => {
                if signer.trim().is_empty() {
                    return Err(ChecklistError::EmptySigner {
                        key: key.to_owned(),
                    });
                }
                Ok(ItemResult::Signature {
                    signer,
                    signed_at: at,
                })
            }
            (_, input) => Err(mismatch(&input)),
        }
    }
}

/// One task of a checklist, as written in a plan or template.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskSpec {
    /// Unique within the checklist; results are recorded by key.
    pub key: String,
    pub label: String,
    pub kind: TaskKind,
    /// A required task must be done, or skipped with a reason, before the
    /// work order can be completed.
    pub required: bool,
}

impl TaskSpec {
    pub fn new(key: &str, label: &str, kind: TaskKind, required: bool) -> Self {
        TaskSpec {
            key: key.to_owned(),
            label: label.to_owned(),
            kind,
            required,
        }
    }
}

/// What a technician enters for a task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemInput {
    Check {
        passed: bool,
    },
    Reading {
        value: f64,
    },
    /// For photo and attachment tasks: the id of the stored file.
    Attachment {
        reference: String,
    },
    /// The name of the person signing (not necessarily the user entering
    /// it, e.g. the site owner's representative); the time is the time of
    /// recording.
    Signature {
        signer: String,
    },
}

impl ItemInput {
    pub fn as_str(&self) -> &'static str {
        match self {
            ItemInput::Check { .. } => "check",
            ItemInput::Reading { .. } => "reading",
            ItemInput::Attachment { .. } => "attachment",
            ItemInput::Signature { .. } => "signature",
        }
    }
}

/// Which limit a reading broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitFlag {
    BelowMin,
    AboveMax,
}

/// A validated result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemResult {
    Check {
        passed: bool,
    },
    Reading {
        value: f64,
        unit: String,
        /// `Some` when the value is outside the task's limits.
        flag: Option<LimitFlag>,
    },
    Attachment {
        reference: String,
    },
    Signature {
        signer: String,
        #[serde(with = "time::serde::rfc3339")]
        signed_at: OffsetDateTime,
    },
}

impl ItemResult {
    /// A failed check or an out-of-limit reading.
    pub fn is_finding(&self) -> bool {
        matches!(
            self,
            ItemResult::Check { passed: false } | ItemResult::Reading { flag: Some(_), .. }
        )
    }
}

/// Where a task stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemStatus {
    Pending,
    Done {
        result: ItemResult,
        by: UserId,
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
    Skipped {
        reason: String,
        by: UserId,
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
}

/// A task and its status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChecklistItem {
    pub task: TaskSpec,
    pub status: ItemStatus,
}

impl ChecklistItem {
    /// Required and still pending: blocks completion.
    pub fn is_blocking(&self) -> bool {
        self.task.required && self.status == ItemStatus::Pending
    }

    pub fn result(&self) -> Option<&ItemResult> {
        match &self.status {
            ItemStatus::Done { result, .. } => Some(result),
            _ => None,
        }
    }
}

/// Why a checklist or a result was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ChecklistError {
    #[error("checklist has no item {key:?}")]
    UnknownItem { key: String },
    #[error("item {key:?} is a {expected} task; a {got} result does not fit it")]
    KindMismatch {
        key: String,
        expected: &'static str,
        got: &'static str,
    },
    #[error("reading for item {key:?} is not a finite number")]
    ReadingNotFinite { key: String },
    #[error("item {key:?} needs an attachment reference")]
    EmptyReference { key: String },
    #[error("item {key:?} needs the signer's name")]
    EmptySigner { key: String },
    #[error("skipping item {key:?} needs a reason")]
    ReasonRequired { key: String },
    #[error("checklist has two items with key {key:?}")]
    DuplicateKey { key: String },
    #[error("checklist item has an empty key")]
    EmptyKey,
    #[error("item {key:?} has limits min {min} > max {max} or not finite")]
    BadLimits { key: String, min: f64, max: f64 },
}

impl ChecklistError {
    /// Stable machine-readable code for API clients.
    pub fn code(&self) -> &'static str {
        match self {
            ChecklistError::UnknownItem { .. } => "unknown_checklist_item",
            ChecklistError::KindMismatch { .. } => "result_kind_mismatch",
            ChecklistError::ReadingNotFinite { .. } => "reading_not_finite",
            ChecklistError::EmptyReference { .. } => "attachment_required",
            ChecklistError::EmptySigner { .. } => "signer_required",
            ChecklistError::ReasonRequired { .. } => "reason_required",
            ChecklistError::DuplicateKey { .. } => "duplicate_checklist_key",
            ChecklistError::EmptyKey => "empty_checklist_key",
            ChecklistError::BadLimits { .. } => "bad_reading_limits",
        }
    }
}

/// The checklist of one work order, in display order.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Checklist {
    pub items: Vec<ChecklistItem>,
}

impl Checklist {
    /// A fresh checklist with every task pending. Refuses empty or duplicate
    /// keys and reading limits that are not finite or have `min > max`.
    pub fn from_tasks(tasks: impl IntoIterator<Item = TaskSpec>) -> Result<Self, ChecklistError> {
        let mut items: Vec<ChecklistItem> = Vec::new();
        for task in tasks {
            if task.key.is_empty() {
                return Err(ChecklistError::EmptyKey);
            }
            if items.iter().any(|i| i.task.key == task.key) {
                return Err(ChecklistError::DuplicateKey { key: task.key });
            }
            if let TaskKind::Reading { min, max, .. } = &task.kind {
                let lo = min.unwrap_or(f64::MIN);
                let hi = max.unwrap_or(f64::MAX);
                if !lo.is_finite() || !hi.is_finite() || lo > hi {
                    return Err(ChecklistError::BadLimits {
                        key: task.key,
                        min: lo,
                        max: hi,
                    });
                }
            }
            items.push(ChecklistItem {
                task,
                status: ItemStatus::Pending,
            });
        }
        Ok(Checklist { items })
    }

    pub fn item(&self, key: &str) -> Option<&ChecklistItem> {
        self.items.iter().find(|i| i.task.key == key)
    }

    fn item_mut(&mut self, key: &str) -> Result<&mut ChecklistItem, ChecklistError> {
        self.items
            .iter_mut()
            .find(|i| i.task.key == key)
            .ok_or_else(|| ChecklistError::UnknownItem {
                key: key.to_owned(),
            })
    }

    /// Records a result for `key` (replacing an earlier one: corrections are
    /// allowed). Returns the stored result, flagged if out of limits.
    pub fn record(
        &mut self,
        key: &str,
        input: ItemInput,
        by: &UserId,
        at: OffsetDateTime,
    ) -> Result<ItemResult, ChecklistError> {
        let item = self.item_mut(key)?;
        let result = item.task.kind.evaluate(key, input, at)?;
        item.status = ItemStatus::Done {
            result: result.clone(),
            by: by.clone(),
            at,
        };
        Ok(result)
    }

    /// Marks `key` as skipped; the reason must not be blank.
    pub fn skip(
        &mut self,
        key: &str,
        reason: &str,
        by: &UserId,
        at: OffsetDateTime,
    ) -> Result<(), ChecklistError> {
        let item = self.item_mut(key)?;
        if reason.trim().is_empty() {
            return Err(ChecklistError::ReasonRequired {
                key: key.to_owned(),
            });
        }
        item.status = ItemStatus::Skipped {
            reason: reason.to_owned(),
            by: by.clone(),
            at,
        };
        Ok(())
    }

    /// Keys of required items still pending: completion is refused while
    /// this is not empty.
    pub fn blocking_items(&self) -> Vec<String> {
        self.items
            .iter()
            .filter(|i| i.is_blocking())
            .map(|i| i.task.key.clone())
            .collect()
    }

    /// Failed checks and out-of-limit readings.
    pub fn findings(&self) -> impl Iterator<Item = &ChecklistItem> {
        self.items
            .iter()
            .filter(|i| i.result().is_some_and(ItemResult::is_finding))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const AT: OffsetDateTime = datetime!(2025-03-01 10:00 UTC);

    fn tech() -> UserId {
        UserId::from("tech")
    }

    fn sample() -> Checklist {
        Checklist::from_tasks([
            TaskSpec::new("visual", "Visual inspection", TaskKind::Check, true),
            TaskSpec::new(
                "ir",
                "Insulation resistance",
                TaskKind::Reading {
                    unit: "MOhm".into(),
                    min: Some(1.0),
                    max: Some(1000.0),
                },
                true,
            ),
            TaskSpec::new("photo", "Photo of the label", TaskKind::Photo, false),
            TaskSpec::new("sign", "Customer sign-off", TaskKind::Signature, true),
        ])
        .unwrap()
    }

    #[test]
    fn readings_out_of_limits_are_recorded_and_flagged() {
        let mut c = sample();
        let r = c
            .record("ir", ItemInput::Reading { value: 0.4 }, &tech(), AT)
            .unwrap();
        assert_eq!(
            r,
            ItemResult::Reading {
                value: 0.4,
                unit: "MOhm".into(),
                flag: Some(LimitFlag::BelowMin)
            }
        );
        c.record("ir", ItemInput::Reading { value: 2000.0 }, &tech(), AT)
            .unwrap();
        assert_eq!(c.findings().count(), 1);
        // Limits are inclusive.
        let r = c
            .record("ir", ItemInput::Reading { value: 1000.0 }, &tech(), AT)
            .unwrap();
        assert!(!r.is_finding());
        assert_eq!(c.findings().count(), 0);
        c.record("visual", ItemInput::Check { passed: false }, &tech(), AT)
            .unwrap();
        let findings: Vec<&str> = c.findings().map(|i| i.task.key.as_str()).collect();
        assert_eq!(findings, ["visual"]);
    }

    #[test]
    fn results_are_validated_against_their_kind() {
        let mut c = sample();
        let err = c
            .record("visual", ItemInput::Reading { value: 1.0 }, &tech(), AT)
            .unwrap_err();
        assert_eq!(err.code(), "result_kind_mismatch");
        assert_eq!(
            err.to_string(),
            "item \"visual\" is a check task; a reading result does not fit it"
        );
        let err = c
            .record("ir", ItemInput::Reading { value: f64::NAN }, &tech(), AT)
            .unwrap_err();
        assert_eq!(err.code(), "reading_not_finite");
        let err = c
            .record(
                "photo",
                ItemInput::Attachment {
                    reference: " ".into(),
                },
                &tech(),
                AT,
            )
            .unwrap_err();
        assert_eq!(err.code(), "attachment_required");
        let err = c
            .record(
                "sign",
                ItemInput::Signature { signer: "".into() },
                &tech(),
                AT,
            )
            .unwrap_err();
        assert_eq!(err.code(), "signer_required");
        let err = c
            .record("nope", ItemInput::Check { passed: true }, &tech(), AT)
            .unwrap_err();
        assert_eq!(err.code(), "unknown_checklist_item");
        // Refused inputs leave the items pending.
        assert_eq!(c.blocking_items(), ["visual", "ir", "sign"]);

        let r = c
            .record(
                "sign",
                ItemInput::Signature {
                    signer: "M. Owner".into(),
                },
                &tech(),
                AT,
            )
            .unwrap();
        assert_eq!(
            r,
            ItemResult::Signature {
                signer: "M. Owner".into(),
                signed_at: AT
            }
        );
        c.record(
            "photo",
            ItemInput::Attachment {
                reference: "att-77".into(),
            },
            &tech(),
            AT,
        )
        .unwrap();
    }

    #[test]
    fn completion_needs_required_items_done_or_skipped_with_reason() {
        let mut c = sample();
        assert_eq!(c.blocking_items(), ["visual", "ir", "sign"]);
        c.record("visual", ItemInput::Check { passed: true }, &tech(), AT)
            .unwrap();
        assert_eq!(
            c.skip("ir", "  ", &tech(), AT).unwrap_err().code(),
            "reason_required"
        );
        c.skip("ir", "megger broken", &tech(), AT).unwrap();
        assert_eq!(c.blocking_items(), ["sign"]);
        c.record(
            "sign",
            ItemInput::Signature {
                signer: "Ana".into(),
            },
            &tech(),
            AT,
        )
        .unwrap();
        // The optional photo may stay pending.
        assert!(c.blocking_items().is_empty());
        assert_eq!(c.item("photo").unwrap().status, ItemStatus::Pending);
    }

    #[test]
    fn bad_templates_are_refused() {
        let dup = Checklist::from_tasks([
            TaskSpec::new("a", "A", TaskKind::Check, true),
            TaskSpec::new("a", "A again", TaskKind::Check, false),
        ]);
        assert_eq!(dup.unwrap_err().code(), "duplicate_checklist_key");
        let limits = Checklist::from_tasks([TaskSpec::new(
            "r",
            "R",
            TaskKind::Reading {
                unit: "V".into(),
                min: Some(10.0),
                max: Some(1.0),
            },
            true,
        )]);
        assert_eq!(limits.unwrap_err().code(), "bad_reading_limits");
        let nan = Checklist::from_tasks([TaskSpec::new(
            "r",
            "R",
            TaskKind::Reading {
                unit: "V".into(),
                min: Some(f64::NAN),
                max: None,
            },
            true,
        )]);
        assert_eq!(nan.unwrap_err().code(), "bad_reading_limits");
        assert_eq!(
            Checklist::from_tasks([TaskSpec::new("", "x", TaskKind::Check, false)])
                .unwrap_err()
                .code(),
            "empty_checklist_key"
        );
    }

    #[test]
    fn serialises_in_snake_case() {
        let mut c = sample();
        c.record("ir", ItemInput::Reading { value: 0.5 }, &tech(), AT)
            .unwrap();
        let json = serde_json::to_value(&c).unwrap();
        assert_eq!(json["items"][1]["task"]["kind"]["reading"]["unit"], "MOhm");
        assert_eq!(
            json["items"][1]["status"]["done"]["result"]["reading"]["flag"],
            "below_min"
        );
        assert_eq!(
            json["items"][1]["status"]["done"]["at"],
            "2025-03-01T10:00:00Z"
        );
        assert_eq!(json["items"][0]["status"], "pending");
        let back: Checklist = serde_json::from_value(json).unwrap();
        assert_eq!(back, c);
        let bytes = postcard::to_allocvec(&c).unwrap();
        assert_eq!(postcard::from_bytes::<Checklist>(&bytes).unwrap(), c);
    }
}
