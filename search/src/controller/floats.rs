//! `f32` buffers that serialise bit-exactly: little-endian bits as hex in one JSON string
//! (decimal text would round-trip through f64 and could move the last bit).

use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Floats(pub Vec<f32>);

impl Serialize for Floats {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let text: String = self.0.iter().map(|x| format!("{:08x}", x.to_bits())).collect();
        s.serialize_str(&text)
    }
}

impl<'de> Deserialize<'de> for Floats {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        if text.len() % 8 != 0 || !text.is_ascii() {
            return Err(serde::de::Error::custom("float buffer: length is not a multiple of 8 hex digits"));
        }
        let word = |i: usize| u32::from_str_radix(&text[i..i + 8], 16).map(f32::from_bits);
        let values: Result<Vec<f32>, _> = (0..text.len()).step_by(8).map(word).collect();
        values.map(Floats).map_err(|e| serde::de::Error::custom(format!("float buffer: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_bit() {
        let f = Floats(vec![0.1, -0.0, f32::MIN_POSITIVE / 3.0, 1.0 / 3.0, f32::MAX]);
        let back: Floats = serde_json::from_str(&serde_json::to_string(&f).unwrap()).unwrap();
        assert_eq!(
            f.0.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
            back.0.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
        );
        assert!(serde_json::from_str::<Floats>("\"123\"").is_err());
    }
}
