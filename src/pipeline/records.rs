//! The per-sample records a shard carries in the journal and the manifest:
//! the provenance of every written sample (where it came from and what each
//! stage did to it) and the reason for every dropped one. They are typed here
//! and stored as JSON values in [`ShardRecord`](crate::io::manifest::ShardRecord);
//! field order is key order in the JSON.

use serde::Serialize;
use serde_json::Value;

use crate::sample::Sample;

/// Which output sample a record is about, and the input sample it came from.
#[derive(Debug, Serialize)]
pub(super) struct SampleRef<'a> {
    /// Index over all output samples of the run.
    pub output_index: usize,
    /// The sample id (input file, and index in it when it holds several).
    pub id: &'a str,
    /// The input file, relative to the input root.
    pub input: &'a str,
    /// Index of the sample in that file.
    pub input_index: usize,
    /// 0 for the original, `k + 1` for augmented copy `k`.
    pub copy: u64,
}

impl<'a> SampleRef<'a> {
    /// The reference of output sample `output_index`, `sample`, read from
    /// the input file `input`.
    pub fn of(output_index: usize, sample: &'a Sample, input: &'a str) -> SampleRef<'a> {
        SampleRef {
            output_index,
            id: &sample.id,
            input,
            input_index: sample.origin.index,
            copy: sample.origin.copy,
        }
    }
}

/// A written sample: where it came from and one record per stage applied.
#[derive(Debug, Serialize)]
pub(super) struct Provenance<'a> {
    #[serde(flatten)]
    pub sample: SampleRef<'a>,
    /// See [`stage_record`].
    pub stages: &'a [Value],
}

/// A sample dropped by policy, and why.
#[derive(Debug, Serialize)]
pub(super) struct Dropped<'a> {
    #[serde(flatten)]
    pub sample: SampleRef<'a>,
    /// The error that dropped it.
    pub reason: &'a str,
}

/// As JSON, for a [`ShardRecord`](crate::io::manifest::ShardRecord).
pub(super) fn to_value(record: &impl Serialize) -> Value {
    serde_json::to_value(record).expect("records serialise")
}

/// What stage `i` (of type `kind`) did to a sample: `{"stage": i, "type":
/// kind, …}` with the fields of the stage's own record `rec` (an object), or
/// with `"record": rec` when it is another value, or nothing more when null.
pub(super) fn stage_record(i: usize, kind: &str, rec: Value) -> Value {
    let mut m = serde_json::Map::new();
    m.insert("stage".into(), Value::from(i));
    m.insert("type".into(), Value::from(kind));
    match rec {
        Value::Object(o) => m.extend(o),
        Value::Null => {}
        other => {
            m.insert("record".into(), other);
        }
    }
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> SampleRef<'static> {
        SampleRef {
            output_index: 7,
            id: "seis1_1_0.npy#1",
            input: "seis1_1_0.npy",
            input_index: 1,
            copy: 2,
        }
    }

    #[test]
    fn provenance_and_drop_records_keep_their_keys_in_order() {
        let stages = [json!({"stage": 0, "type": "flip", "flipped": true})];
        let p = to_value(&Provenance {
            sample: sample(),
            stages: &stages,
        });
        assert_eq!(
            p.to_string(),
            r#"{"output_index":7,"id":"seis1_1_0.npy#1","input":"seis1_1_0.npy","input_index":1,"copy":2,"stages":[{"stage":0,"type":"flip","flipped":true}]}"#
        );
        let d = to_value(&Dropped {
            sample: sample(),
            reason: "NaN",
        });
        assert_eq!(
            d.to_string(),
            r#"{"output_index":7,"id":"seis1_1_0.npy#1","input":"seis1_1_0.npy","input_index":1,"copy":2,"reason":"NaN"}"#
        );
        // pseudo_label reads the copy back from the provenance.
        assert_eq!(p.get("copy"), Some(&json!(2)));
    }

    #[test]
    fn stage_records_merge_objects_and_wrap_other_values() {
        assert_eq!(
            stage_record(1, "flip", json!({"flipped": false})).to_string(),
            r#"{"stage":1,"type":"flip","flipped":false}"#
        );
        assert_eq!(
            stage_record(0, "noise", Value::Null).to_string(),
            r#"{"stage":0,"type":"noise"}"#
        );
        assert_eq!(
            stage_record(2, "x", json!(3.5)).to_string(),
            r#"{"stage":2,"type":"x","record":3.5}"#
        );
    }
}
