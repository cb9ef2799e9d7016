//! The per-sample records a shard carries: the provenance of every written
//! sample (where it came from and what each stage did to it) and the reason
//! for every dropped one, built here from the executor's samples. Their
//! types are the output format's ([`crate::io::manifest::Provenance`],
//! [`crate::io::manifest::Dropped`]); field order is key order in the JSON.

use serde_json::Value;

use crate::io::manifest::{SampleRef, StageRecord};
use crate::sample::Sample;

/// The reference of output sample `output_index`, `sample`, read from the
/// input file `input`.
pub(super) fn sample_ref(output_index: usize, sample: &Sample, input: &str) -> SampleRef {
    SampleRef {
        output_index,
        id: sample.id.clone(),
        input: input.to_string(),
        input_index: sample.origin.index,
        copy: sample.origin.copy,
    }
}

/// What stage `i` (of type `kind`) did to a sample: `{"stage": i, "type":
/// kind, …}` with the fields of the stage's own record `rec` (an object), or
/// with `"record": rec` when it is another value, or nothing more when null.
pub(super) fn stage_record(i: usize, kind: &str, rec: Value) -> StageRecord {
    let fields = match rec {
        Value::Object(o) => o,
        Value::Null => serde_json::Map::new(),
        other => std::iter::once(("record".to_string(), other)).collect(),
    };
    StageRecord {
        stage: i,
        kind: kind.to_string(),
        fields,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::manifest::{Dropped, Provenance};
    use serde_json::json;

    fn sample() -> SampleRef {
        SampleRef {
            output_index: 7,
            id: "seis1_1_0.npy#1".into(),
            input: "seis1_1_0.npy".into(),
            input_index: 1,
            copy: 2,
        }
    }

    /// The bytes of the format: keys in this order, and read back the same.
    #[test]
    fn provenance_and_drop_records_keep_their_keys_in_order() {
        let p = Provenance {
            sample: sample(),
            stages: vec![stage_record(0, "flip", json!({"flipped": true}))],
        };
        let text = serde_json::to_string(&p).unwrap();
        assert_eq!(
            text,
            r#"{"output_index":7,"id":"seis1_1_0.npy#1","input":"seis1_1_0.npy","input_index":1,"copy":2,"stages":[{"stage":0,"type":"flip","flipped":true}]}"#
        );
        assert_eq!(serde_json::from_str::<Provenance>(&text).unwrap(), p);
        let d = Dropped {
            sample: sample(),
            reason: "NaN".into(),
        };
        let text = serde_json::to_string(&d).unwrap();
        assert_eq!(
            text,
            r#"{"output_index":7,"id":"seis1_1_0.npy#1","input":"seis1_1_0.npy","input_index":1,"copy":2,"reason":"NaN"}"#
        );
        assert_eq!(serde_json::from_str::<Dropped>(&text).unwrap(), d);
        // A record without its sample's fields is refused, not defaulted.
        assert!(serde_json::from_str::<Provenance>(r#"{"id":"x","stages":[]}"#).is_err());
    }

    #[test]
    fn stage_records_merge_objects_and_wrap_other_values() {
        let text = |r: StageRecord| serde_json::to_string(&r).unwrap();
        assert_eq!(
            text(stage_record(1, "flip", json!({"flipped": false}))),
            r#"{"stage":1,"type":"flip","flipped":false}"#
        );
        assert_eq!(
            text(stage_record(0, "noise", Value::Null)),
            r#"{"stage":0,"type":"noise"}"#
        );
        assert_eq!(
            text(stage_record(2, "x", json!(3.5))),
            r#"{"stage":2,"type":"x","record":3.5}"#
        );
    }
}
