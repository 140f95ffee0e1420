//! The scalar engine against the original program's real output (`../shared/golden`):
//! every loss, every first-step gradient and every sample equal to the last bit.

mod common;

use microgpt::engine::Engine;
use microgpt::rng::Rng;
use microgpt::run::Corpus;
use microgpt::sample;
use microgpt::scalar::ScalarGpt;
use microgpt::train::{TrainOptions, Trainer};

#[test]
fn scalar_engine_reproduces_every_golden_bit_for_bit() {
    let Some(names) = common::names_path() else {
        return;
    };
    for g in common::goldens() {
        let mut rng = Rng::new(g.seed);
        let corpus = Corpus::load(Some(&names), &mut rng).unwrap();
        assert_eq!(corpus.docs.len(), g.num_docs, "{}", g.name);
        let cfg = g.config();
        let params = cfg.layout().init(&mut rng, 0.08);
        assert_eq!(params.len(), g.num_params, "{}", g.name);
        let options = TrainOptions {
            steps: g.steps,
            ..Default::default()
        };
        let mut trainer = Trainer::new(ScalarGpt::new(&cfg, &params), options);
        for (s, &want) in g.losses.iter().enumerate() {
            let stats = trainer.step(&corpus.tokens).unwrap();
            assert_eq!(
                stats.loss.to_bits(),
                want.to_bits(),
                "{} step {}: {} vs {}",
                g.name,
                s + 1,
                stats.loss,
                want
            );
            if s == 0 {
                // The Adam update zeroes nothing here: gradients stay until the next step.
                let grads = trainer.engine.grads();
                let layout = cfg.layout();
                for spec in &layout.specs {
                    for i in spec.range() {
                        assert_eq!(
                            grads[i].to_bits(),
                            g.first_step_grads[i].to_bits(),
                            "{}: first-step gradient of {}[{}]",
                            g.name,
                            spec.name,
                            i - spec.offset
                        );
                    }
                }
            }
        }
        let samples: Vec<String> = (0..g.num_samples)
            .map(|_| {
                let ids = sample::generate(&mut trainer.engine, &mut rng, &[], g.temperature);
                corpus.vocab.decode(&ids)
            })
            .collect();
        assert_eq!(samples, g.samples, "{}", g.name);
    }
}
