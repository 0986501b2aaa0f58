//! `smartmixed bench`: the CSV columns other tools read, appended without overwriting.

mod common;

#[test]
fn bench_ops_appends_rows_with_the_agreed_columns() {
    let dir = common::temp_dir("bench");
    let csv_path = dir.join("nested/cpu.csv");
    for _ in 0..2 {
        let stdout = common::run_ok(&[
            "bench",
            "ops",
            "--shapes",
            "8x12,4x6",
            "--repeats",
            "2",
            "--csv",
            csv_path.to_str().unwrap(),
        ]);
        assert!(stdout.contains("faster than grouped"), "{stdout}");
    }
    let mut reader = csv::Reader::from_path(&csv_path).unwrap();
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(
        header,
        "bench,impl,pass,rows,cols,dtype,device,threads,p20_us,p50_us,p80_us,gbps,git,timestamp,\
         gflops,kernels"
            .split(',')
            .collect::<Vec<_>>()
    );
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    // 2 shapes x (24 impls x 2 passes + copy) x 2 invocations, one header. The impls: fused,
    // fused-all, fused-{gelu,silu,mish,softplus}, uniform-{relu,elu,tanh,gelu,silu}, grouped,
    // masked, mixture-fused, mixture-naive, mixture-fused-all, and {prelu, swish_beta, pau,
    // pau_neuron}-{fused,candle}.
    assert_eq!(rows.len(), 2 * 49 * 2);
    for r in &rows {
        assert_eq!(&r[0], "ops");
        let (p20, p50, p80): (f64, f64, f64) = (
            r[8].parse().unwrap(),
            r[9].parse().unwrap(),
            r[10].parse().unwrap(),
        );
        assert!(0.0 < p20 && p20 <= p50 && p50 <= p80, "{r:?}");
    }
    assert!(rows
        .iter()
        .any(|r| &r[1] == "mixture-fused" && &r[2] == "fwd_bwd"));
    assert!(rows
        .iter()
        .any(|r| &r[1] == "pau_neuron-fused" && &r[2] == "fwd_bwd"));

    let output = common::run(&["bench", "ops", "--shapes", "8by12"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--shapes"));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn bench_train_times_each_step_and_the_forward_pass_of_the_network_a_run_leaves() {
    let dir = common::temp_dir("bench-train");
    let csv_path = dir.join("train.csv");
    let stdout = common::run_ok(&[
        "bench",
        "train",
        "--arch",
        "4",
        "--batches",
        "2",
        "--threads",
        "1",
        "--method",
        "prelu,softmix_freeze",
        "--csv",
        csv_path.to_str().unwrap(),
    ]);
    assert!(
        stdout.contains("inference (forward) / relu: phase2 "),
        "{stdout}"
    );
    assert!(
        stdout.contains("floor / alone") && stdout.contains("kernels): x.W^T 784x256 "),
        "{stdout}"
    );
    let mut reader = csv::Reader::from_path(&csv_path).unwrap();
    let records: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    // Every product row counts its operations and names the kernel family.
    for r in records
        .iter()
        .filter(|r| r[1].starts_with("matmul-floor") || &r[2] == "alone")
    {
        assert!(r[14].parse::<f64>().unwrap() > 0.0, "{r:?}");
        assert!(
            ["avx512", "avx2-fma", "neon", "scalar"].contains(&&r[15]),
            "{r:?}"
        );
    }
    let rows: Vec<(String, String)> = records
        .iter()
        .map(|r| (r[1].to_string(), r[2].to_string()))
        .collect();
    let row = |name: &str, pass: &str| (name.to_string(), pass.to_string());
    let expected = [
        row("relu", "step"),
        row("optimizer", "step"),
        row("phase1", "step"),
        row("phase2", "step"),
        row("matmul-floor", "step"),
        row("relu", "infer"),
        row("phase2", "infer"),
        row("matmul-floor", "infer"),
        row("prelu", "step"),
        row("prelu", "infer"),
        // Its network at inference is phase 2's kind: no row of its own.
        row("softmix_freeze", "step"),
        // Architecture 4 (784-256-128-10): each product of each layer alone.
        row("x.W^T 784x256", "alone"),
        row("g^T.x 784x256", "alone"),
        row("g.W 784x256", "alone"),
        row("x.W^T 256x128", "alone"),
        row("g^T.x 256x128", "alone"),
        row("g.W 256x128", "alone"),
        row("x.W^T 128x10", "alone"),
        row("g^T.x 128x10", "alone"),
        row("g.W 128x10", "alone"),
    ];
    assert_eq!(rows, expected);
    std::fs::remove_dir_all(dir).unwrap();
}

/// A CSV of the older columns gets the two new ones (empty in its rows) before new rows are
/// appended; a CSV of other columns is refused with exit 2, untouched.
#[test]
fn bench_extends_an_older_csv_and_refuses_a_foreign_one() {
    let dir = common::temp_dir("bench-old-csv");
    let old = dir.join("old.csv");
    let old_row = "ops,copy,fwd,8,12,f32,cpu,1,1.0,2.0,3.0,4.0,abc,2026-11-28T18:23:40Z";
    std::fs::write(
        &old,
        format!(
            "bench,impl,pass,rows,cols,dtype,device,threads,p20_us,p50_us,p80_us,gbps,git,\
             timestamp\n{old_row}\n"
        ),
    )
    .unwrap();
    let args = |csv: &std::path::Path| {
        let csv = csv.to_str().unwrap().to_string();
        vec![
            "bench".to_string(),
            "ops".into(),
            "--shapes".into(),
            "4x6".into(),
            "--repeats".into(),
            "1".into(),
            "--csv".into(),
            csv,
        ]
    };
    let owned = args(&old);
    common::run_ok(&owned.iter().map(String::as_str).collect::<Vec<_>>());
    let text = std::fs::read_to_string(&old).unwrap();
    let mut lines = text.lines();
    assert!(lines.next().unwrap().ends_with(",timestamp,gflops,kernels"));
    assert_eq!(lines.next().unwrap(), format!("{old_row},,"));
    assert_eq!(lines.count(), 49, "the new rows follow");

    let foreign = dir.join("foreign.csv");
    std::fs::write(&foreign, "a,b\n1,2\n").unwrap();
    let owned = args(&foreign);
    let output = common::run(&owned.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("foreign.csv") && stderr.contains("columns"),
        "{stderr}"
    );
    assert_eq!(std::fs::read_to_string(&foreign).unwrap(), "a,b\n1,2\n");
    std::fs::remove_dir_all(dir).unwrap();
}
