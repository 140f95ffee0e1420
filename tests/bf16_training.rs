//! `--dtype bf16`: the gradient checks are for f64, so bf16 is checked against f32 instead.
//! Its first-step gradients per tensor (a table, as llm.c's test_gpt2.c prints) within what
//! rounding the GEMM operands to 8 bits allows, a short run's loss curve within a stated
//! band of f32's, both kernels (the AVX512_BF16 one where the CPU has it) on the same
//! numbers up to the order of the f32 sums; and the command line: the kernel in the
//! output and config.json, resume bit for bit, sampling and inspecting in f32.

mod common;

use common::cli::*;
use microgpt::data::Corpus;
use microgpt::model::config::Activation;
use microgpt::model::engine::Engine;
use microgpt::model::tensor::TensorGpt;
use microgpt::numerics::bf16::Kernel;
use microgpt::numerics::rng::Rng;
use microgpt::settings::{DataMode, DataSettings, RunSettings};
use microgpt::training::step::{evaluate, Trainer};

/// Tiny Shakespeare as a stream: 2 layers of 64, gelu, block 32, batch 8.
struct Setup {
    corpus: Corpus,
    settings: RunSettings,
    params: Vec<f64>,
}

fn setup(steps: usize) -> Option<Setup> {
    let path = common::shared("data/tinyshakespeare.txt")?;
    let mut settings = RunSettings {
        data: DataSettings {
            input: Some(path),
            data: DataMode::Stream,
            seed: 1,
            val_frac: 0.1,
        },
        ..RunSettings::default()
    };
    let m = &mut settings.model;
    (m.n_embd, m.n_head, m.n_layer, m.block_size, m.init_std) = (64, 4, 2, 32, 0.02);
    // gelu, as the Shakespeare recipe: relu's kink turns a rounding of a pre-activation
    // near 0 into a gradient of 0 or not (fc1's gradients then differ by up to 10%).
    m.activation = Activation::Gelu;
    settings.schedule.steps = steps;
    settings.schedule.batch_size = 8;
    settings.optimizer.lr = 3e-3;
    settings.optimizer.beta1 = 0.9;
    let mut rng = Rng::new(1);
    let corpus = Corpus::load(&settings.data, 32, &mut rng).unwrap();
    let cfg = settings.model.config(corpus.vocab.size());
    let params = cfg.layout().init(&mut rng, settings.model.init_std);
    Some(Setup {
        corpus,
        settings,
        params,
    })
}

/// The engine: f32, or bf16 on `kernel`.
fn engine(s: &Setup, kernel: Option<Kernel>) -> TensorGpt<f32> {
    let cfg = s.settings.model.config(s.corpus.vocab.size());
    match kernel {
        None => TensorGpt::new(&cfg, &s.params).unwrap(),
        Some(k) => TensorGpt::new_bf16(&cfg, &s.params, k).unwrap(),
    }
}

/// The bf16 kernels this CPU runs (a printed skip for the other).
fn kernels() -> Vec<Kernel> {
    Kernel::ALL
        .into_iter()
        .filter(|k| {
            if !k.supported() {
                eprintln!(
                    "SKIPPED (not a pass): no AVX512_BF16 for the {} kernel",
                    k.name()
                );
            }
            k.supported()
        })
        .collect()
}

/// Per-step training losses and the validation loss every `every` steps.
fn curve(s: &Setup, kernel: Option<Kernel>, every: usize) -> (Vec<f64>, Vec<f64>) {
    let mut trainer = Trainer::new(engine(s, kernel), &s.settings);
    let val = s.corpus.val_sequences(32, 64);
    let batches = s.corpus.batches(8, 32, s.settings.data.seed);
    let (mut losses, mut vals) = (Vec::new(), Vec::new());
    for step in 0..s.settings.schedule.steps {
        losses.push(trainer.step(&batches.batch(step)).unwrap().loss);
        if (step + 1) % every == 0 {
            vals.push(evaluate(&mut trainer.engine, &val, 8));
        }
    }
    (losses, vals)
}

#[test]
fn bf16_first_step_gradients_are_f32s_within_bf16_rounding() {
    let Some(s) = setup(1) else { return };
    let batches = s.corpus.batches(8, 32, 1);
    let batch = batches.batch(0);
    let mut f32_model = engine(&s, None);
    let want_loss = f32_model.forward_backward(&batch);
    let layout = f32_model.layout().clone();
    for kernel in kernels() {
        let mut model = engine(&s, Some(kernel));
        let loss = model.forward_backward(&batch);
        println!(
            "{} kernel: loss {loss:.6} (f32 {want_loss:.6})",
            kernel.name()
        );
        println!("{:<16} {:>12} {:>12}  ok", "tensor", "max abs", "max rel");
        let mut bad = Vec::new();
        for spec in &layout.specs {
            let (got, want) = (
                &model.grads()[spec.range()],
                &f32_model.grads()[spec.range()],
            );
            let abs = got
                .iter()
                .zip(want)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            let scale = want.iter().map(|x| x.abs()).fold(0f32, f32::max);
            let rel = abs / scale.max(f32::MIN_POSITIVE);
            // Operands rounded to 8 bits (relative error 2^-9 each) through two layers and
            // back: 2% of the tensor's largest gradient (measured: at most 0.60%).
            let ok = rel <= 0.02;
            println!(
                "{:<16} {abs:>12.3e} {rel:>12.3e}  {}",
                spec.name,
                if ok { "OK" } else { "NOT OK" }
            );
            if !ok {
                bad.push(spec.name.clone());
            }
        }
        assert!(bad.is_empty(), "{}: gradients off: {bad:?}", kernel.name());
        // Rounded, yet close: 1e-3 of a loss of ~4.2.
        let diff = (loss - want_loss).abs();
        assert!(
            diff > 1e-7 && diff < 1e-3,
            "{}: loss {loss} vs f32 {want_loss}",
            kernel.name()
        );
    }
}

#[test]
fn a_short_bf16_run_stays_within_a_band_of_f32s_loss_curve() {
    // The band: the mean training loss over each window of 20 steps, and every validation
    // loss, within 0.01 of f32's (measured: at most 0.0005 and 0.0007).
    let Some(s) = setup(200) else { return };
    let (f32_losses, f32_vals) = curve(&s, None, 50);
    let mut first_losses = Vec::new();
    for kernel in kernels() {
        let (losses, vals) = curve(&s, Some(kernel), 50);
        for (w, (a, b)) in losses.chunks(20).zip(f32_losses.chunks(20)).enumerate() {
            let mean = |x: &[f64]| x.iter().sum::<f64>() / x.len() as f64;
            let diff = (mean(a) - mean(b)).abs();
            println!(
                "{} steps {:>3}..: mean loss {:.4}, f32 {:.4}",
                kernel.name(),
                20 * w,
                mean(a),
                mean(b)
            );
            assert!(
                diff <= 0.01,
                "{}: window {w} differs by {diff}",
                kernel.name()
            );
        }
        for (step, (a, b)) in vals.iter().zip(&f32_vals).enumerate() {
            println!(
                "{} val at step {}: {a:.4}, f32 {b:.4}",
                kernel.name(),
                50 * (step + 1)
            );
            assert!(
                (a - b).abs() <= 0.01,
                "{}: val {a} vs f32 {b}",
                kernel.name()
            );
        }
        assert!(
            vals[3] < vals[0] - 0.1,
            "{}: did not learn: {vals:?}",
            kernel.name()
        );
        first_losses.push(losses[0]);
    }
    // Both kernels multiply the same rounded operands: the first step agrees to the order
    // of the f32 sums.
    if let [a, b] = first_losses[..] {
        assert!((a - b).abs() < 1e-5, "avx512_bf16 {a} vs portable {b}");
    }
}

/// `microgpt` with `MICROGPT_BF16_KERNEL` set.
fn with_kernel(kernel: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_microgpt"))
        .args(args)
        .env("MICROGPT_BF16_KERNEL", kernel)
        .stdin(Stdio::null())
        .output()
        .expect("run microgpt")
}

#[test]
fn bf16_runs_name_their_kernel_resume_bit_for_bit_and_sample_in_f32() {
    let dir = tmp("bf16");
    let data = dataset(&dir);
    for kernel in kernels() {
        let name = kernel.name();
        let (full, part) = (
            dir.join(format!("full-{name}")),
            dir.join(format!("part-{name}")),
        );
        let flags = [
            "--dtype",
            "bf16",
            "--n-embd",
            "16",
            "--n-head",
            "2",
            "--batch-size",
            "3",
            "--steps",
            "24",
            "--num-samples",
            "3",
            "--out",
        ];
        let run = |out: &Path, extra: &[&str]| {
            let mut args = vec!["train", "--input", s(&data)];
            args.extend(flags);
            args.push(s(out));
            args.extend(extra);
            let o = with_kernel(name, &args);
            assert!(o.status.success(), "{args:?}: {}", text(&o.stderr));
            text(&o.stdout)
        };
        let out = run(&full, &[]);
        assert!(out.contains(&format!("bf16 GEMMs: {name} (")), "{out}");
        let config = RunConfig::read(&full).unwrap();
        assert_eq!(config.bf16_kernel, Some(kernel));
        run(&part, &["--stop-after", "9"]);
        let o = with_kernel(name, &["train", "--resume", s(&part), "--quiet"]);
        assert!(o.status.success(), "{}", text(&o.stderr));
        same_metrics(&full, &part);
        same_checkpoint(&full, &part);
        // Stored as f32, trained as bf16.
        let model = checkpoint::load_model(&part).unwrap();
        assert_eq!(model.dtype.to_string(), "bf16");
        let weights = std::fs::read(model.path.join("model.safetensors")).unwrap();
        assert!(text(&weights).contains("\"dtype\":\"F32\""));
        for dtype in ["f32", "bf16", "f64"] {
            let args = [
                "sample",
                "--run",
                s(&part),
                "--dtype",
                dtype,
                "--prompt",
                "ka",
            ];
            let o = with_kernel(name, &args);
            assert!(o.status.success(), "{args:?}: {}", text(&o.stderr));
            assert!(text(&o.stdout).lines().all(|l| l.contains(": ka")));
        }
        let o = with_kernel(
            name,
            &[
                "inspect",
                "--run",
                s(&part),
                "--text",
                "ka",
                "--dtype",
                "f32",
            ],
        );
        assert!(o.status.success(), "{}", text(&o.stderr));
    }
}

#[test]
fn a_bad_kernel_choice_and_bf16_gradcheck_are_refused() {
    let dir = tmp("bf16-errors");
    let data = dataset(&dir);
    let o = with_kernel(
        "avx9",
        &[
            "train",
            "--input",
            s(&data),
            "--dtype",
            "bf16",
            "--steps",
            "1",
        ],
    );
    let err = text(&o.stderr);
    assert!(
        !o.status.success() && err.trim().lines().count() == 1,
        "{err}"
    );
    assert!(
        err.contains("MICROGPT_BF16_KERNEL=\"avx9\": use avx512_bf16, portable or auto"),
        "{err}"
    );
    // gradcheck offers only the dtypes it checks, and says why in its help.
    let o = microgpt(&["gradcheck", "--input", s(&data), "--dtype", "bf16"]);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("[possible values: f64, f32]"), "{err}");
    assert!(ok(&["gradcheck", "--help"]).contains("not bf16: bf16 rounds"));
    let err = fails(&[
        "train",
        "--input",
        s(&data),
        "--dtype",
        "bf16",
        "--engine",
        "scalar",
    ]);
    assert!(err.contains("the scalar engine runs in f64 only"), "{err}");
}
