//! CPython `random` parity against values committed from `scripts/rng_vectors.py`.

use microgpt::numerics::rng::Rng;

fn f(v: &serde_json::Value) -> f64 {
    v.as_str().unwrap().parse().unwrap()
}

#[test]
fn matches_cpython_random() {
    let text = include_str!("data/rng_vectors.json");
    let cases: serde_json::Value = serde_json::from_str(text).unwrap();
    for (seed, c) in cases.as_object().unwrap() {
        let mut r = Rng::new(seed.parse().unwrap());
        for v in c["u32"].as_array().unwrap() {
            assert_eq!(r.getrandbits(32) as u64, v.as_u64().unwrap(), "seed {seed}");
        }
        for v in c["random"].as_array().unwrap() {
            assert_eq!(r.random().to_bits(), f(v).to_bits(), "random, seed {seed}");
        }
        for v in c["gauss"].as_array().unwrap() {
            assert_eq!(
                r.gauss(0.0, 0.08).to_bits(),
                f(v).to_bits(),
                "gauss, seed {seed}"
            );
        }
        assert_eq!(r.gauss(1.5, 2.0).to_bits(), f(&c["gauss_after"]).to_bits());
        for kv in c["getrandbits"].as_array().unwrap() {
            let (k, v) = (kv[0].as_u64().unwrap(), kv[1].as_u64().unwrap());
            assert_eq!(r.getrandbits(k as u32) as u64, v, "getrandbits({k})");
        }
        for nv in c["randbelow"].as_array().unwrap() {
            let (n, v) = (nv[0].as_u64().unwrap(), nv[1].as_u64().unwrap());
            assert_eq!(r.randbelow(n as u32) as u64, v, "randbelow({n})");
        }
        let mut xs: Vec<u64> = (0..50).collect();
        r.shuffle(&mut xs);
        let want: Vec<u64> = c["shuffle50"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect();
        assert_eq!(xs, want, "shuffle, seed {seed}");
        let weights = [0.1, 0.0, 2.5, 1e-9, 0.7, 3.0];
        for v in c["choices"].as_array().unwrap() {
            assert_eq!(r.choice_weighted(&weights) as u64, v.as_u64().unwrap());
        }
    }
}
