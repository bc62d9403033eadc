//! `dsync plan` on rebuilt field cases: each test writes its uploads into
//! temporary folders, runs the built binary and checks the plan it prints.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

const NOW: &str = "2026-12-04T09:00:00Z";

/// A fresh folder under the system temp folder, removed when dropped.
struct Folder(PathBuf);

impl Folder {
    fn new(label: &str) -> Self {
        let path =
            std::env::temp_dir().join(format!("dsync-plan-cases-{}-{label}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).expect("create temp folder");
        Self(path)
    }

    fn with(self, name: &str, bytes: impl AsRef<[u8]>) -> Self {
        fs::write(self.0.join(name), bytes).expect("write upload");
        self
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Folder {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dsync"))
        .args(args)
        .output()
        .expect("run dsync")
}

fn plan_json(before: &Folder, after: &Folder) -> Value {
    let output = run(&[
        "plan",
        before.path().to_str().unwrap(),
        after.path().to_str().unwrap(),
        "--json",
        "--now",
        NOW,
    ]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("plan JSON")
}

fn plan_text(before: &Folder, after: &Folder) -> String {
    let output = run(&[
        "plan",
        before.path().to_str().unwrap(),
        after.path().to_str().unwrap(),
        "--now",
        NOW,
    ]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8 output")
}

fn events_named<'a>(plan: &'a Value, name: &str) -> Vec<&'a Value> {
    plan["events"]
        .as_array()
        .expect("events array")
        .iter()
        .filter(|event| event["event"] == name)
        .map(|event| &event["data"])
        .collect()
}

fn event_count(plan: &Value) -> usize {
    plan["events"].as_array().expect("events array").len()
}

/// Five people of a Lisbon bakery chain, as `users.csv` rows.
const CREW: [[&str; 4]; 5] = [
    [
        "3101",
        "Benedita",
        "Carvalho",
        "benedita.carvalho@padaria.example",
    ],
    ["3102", "Zdeněk", "Dvořák", "zdenek.dvorak@padaria.example"],
    ["3103", "Þóra", "Sigurðardóttir", "thora.s@padaria.example"],
    ["3104", "Oisín", "Mac Giolla", "oisin.mg@padaria.example"],
    ["3105", "Ngozi", "Eze", "ngozi.eze@padaria.example"],
];

fn crew_csv(delimiter: &str, line_end: &str) -> String {
    let mut text = ["user_id", "first_name", "last_name", "email"].join(delimiter);
    text.push_str(line_end);
    for row in CREW {
        text.push_str(&row.join(delimiter));
        text.push_str(line_end);
    }
    text
}

fn assert_five_created(plan: &Value) {
    assert_eq!(plan["status"], "applied");
    assert_eq!(plan["counts"]["created"], 5);
    assert_eq!(events_named(plan, "dsync.user.created").len(), 5);
    assert_eq!(event_count(plan), 5);
}

#[test]
fn bom_and_crlf_give_clean_columns() {
    let before = Folder::new("c01-before");
    let after =
        Folder::new("c01-after").with("users.csv", format!("\u{feff}{}", crew_csv(",", "\r\n")));

    let plan = plan_json(&before, &after);

    assert_five_created(&plan);
    assert_eq!(plan["files"][0]["encoding"], "utf-8-bom");
    for user in events_named(&plan, "dsync.user.created") {
        assert!(user["raw_attributes"]["user_id"].is_string(), "{user}");
        assert!(!user.to_string().contains("\\r"), "{user}");
    }
}

#[test]
fn utf16le_tab_keeps_names() {
    let before = Folder::new("c02-before");
    let mut bytes = vec![0xFF, 0xFE];
    for unit in crew_csv("\t", "\r\n").encode_utf16() {
        bytes.extend_from_slice(&unit.to_le_bytes());
    }
    let after = Folder::new("c02-after").with("users.csv", bytes);

    let plan = plan_json(&before, &after);

    assert_five_created(&plan);
    assert_eq!(plan["files"][0]["encoding"], "utf-16le");
    let users = events_named(&plan, "dsync.user.created");
    assert_eq!(users[1]["first_name"], "Zdeněk");
    assert_eq!(users[1]["last_name"], "Dvořák");
    assert_eq!(users[2]["last_name"], "Sigurðardóttir");
}

/// Encodes text whose characters are all in Latin-1, which Windows-1252 shares.
fn latin1(text: &str) -> Vec<u8> {
    text.chars()
        .map(|c| u8::try_from(u32::from(c)).expect("Latin-1 character"))
        .collect()
}

#[test]
fn windows_1252_semicolon_keeps_accents() {
    let before = Folder::new("c03-before");
    let text = "user_id;first_name;last_name;email;department_name\r\n\
                4401;Jürgen;Weiß;juergen.weiss@kaffee.example;Einkauf & Qualität\r\n\
                4402;Anaïs;Lefèvre;anais.lefevre@kaffee.example;Einkauf & Qualität\r\n\
                4403;Søs;Ågård;sos.agard@kaffee.example;Röstung\r\n\
                4404;Íñigo;Muñoz;inigo.munoz@kaffee.example;Röstung\r\n\
                4405;Chloé;Brûlé;chloe.brule@kaffee.example;Versand\r\n";
    let after = Folder::new("c03-after").with("users.csv", latin1(text));

    let plan = plan_json(&before, &after);

    assert_five_created(&plan);
    assert_eq!(plan["files"][0]["encoding"], "windows-1252");
    assert_eq!(plan["files"][0]["delimiter"], ";");
    let users = events_named(&plan, "dsync.user.created");
    assert_eq!(users[0]["last_name"], "Weiß");
    assert_eq!(
        users[0]["custom_attributes"]["department_name"],
        "Einkauf & Qualität"
    );
    let warnings = plan["warnings"].as_array().unwrap();
    assert!(
        warnings.iter().any(|warning| warning["message"]
            .as_str()
            .unwrap()
            .contains("Windows-1252")),
        "{warnings:?}"
    );
}

#[test]
fn quoted_newline_stays_in_value() {
    let before = Folder::new("c04-before");
    let mut text = String::from("user_id,first_name,last_name,email,work_address_street\n");
    for row in CREW {
        text.push_str(&format!("{},\"Armazém 7\nRua do Cais 3\"\n", row.join(",")));
    }
    let after = Folder::new("c04-after").with("users.csv", text);

    let plan = plan_json(&before, &after);

    assert_five_created(&plan);
    let users = events_named(&plan, "dsync.user.created");
    assert_eq!(
        users[0]["raw_attributes"]["work_address_street"],
        "Armazém 7\nRua do Cais 3"
    );
}

#[test]
fn trailing_delimiter_and_blank_lines_ignored() {
    let before = Folder::new("c05-before");
    let mut text = String::from("user_id,first_name,last_name,email,\r\n");
    for row in CREW {
        text.push_str(&format!("{},\r\n", row.join(",")));
    }
    text.push_str("\r\n\r\n");
    let after = Folder::new("c05-after").with("users.csv", text);

    let plan = plan_json(&before, &after);

    assert_five_created(&plan);
    assert_eq!(plan["errors"], Value::Array(Vec::new()));
}

#[test]
fn header_variants_are_recognised() {
    let before = Folder::new("c06-before");
    let mut text = String::from("User ID,First Name,LAST_NAME,\u{a0}Email \n");
    for row in CREW {
        text.push_str(&row.join(","));
        text.push('\n');
    }
    let after = Folder::new("c06-after").with("users.csv", text);

    let plan = plan_json(&before, &after);

    assert_five_created(&plan);
    let users = events_named(&plan, "dsync.user.created");
    assert_eq!(users[0]["email"], "benedita.carvalho@padaria.example");
}

#[test]
fn leading_zero_ids_stay_distinct() {
    let before = Folder::new("c07-before");
    let after = Folder::new("c07-after").with(
        "users.csv",
        "user_id,first_name,last_name,email\n\
         0042,Teodora,Ilić,teodora.ilic@mlin.example\n\
         42,Marko,Ilić,marko.ilic@mlin.example\n",
    );

    let plan = plan_json(&before, &after);

    let ids: Vec<&str> = events_named(&plan, "dsync.user.created")
        .iter()
        .map(|user| user["idp_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["0042", "42"]);
}

#[test]
fn duplicate_user_id_keeps_stored_user() {
    let before = Folder::new("c08-before").with("users.csv", crew_csv(",", "\n"));
    let after = Folder::new("c08-after").with(
        "users.csv",
        "user_id,first_name,last_name,email\n\
         3101,Benedita,Carvalho,benedita.carvalho@padaria.example\n\
         3103,Þóra,Sigurðardóttir,thora.s@padaria.example\n\
         3104,Oisín,Mac Giolla,oisin.macgiolla@padaria.example\n\
         3105,Ngozi,Eze,ngozi.eze@padaria.example\n\
         3102,Zdeněk,Dvořák,zdenek.dvorak@padaria.example\n\
         3102,Ludmila,Horáková,ludmila.horakova@padaria.example\n",
    );

    let plan = plan_json(&before, &after);

    assert_eq!(plan["status"], "applied");
    let rows: Vec<u64> = plan["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|error| error["row"].as_u64().unwrap())
        .collect();
    assert_eq!(rows, [5, 6]);
    assert_eq!(plan["counts"]["skipped_rows"], 2);
    assert_eq!(plan["counts"]["deleted"], 0);
    // The other users still sync: 3104's new address is an update.
    let updated = events_named(&plan, "dsync.user.updated");
    assert_eq!(updated.len(), 1);
    assert_eq!(updated[0]["idp_id"], "3104");
    assert!(!plan["events"].to_string().contains("\"idp_id\":\"3102\""));
}

#[test]
fn duplicate_user_id_errors_are_located() {
    let before = Folder::new("c08-text-before").with("users.csv", crew_csv(",", "\n"));
    let after = Folder::new("c08-text-after").with(
        "users.csv",
        "user_id,first_name,last_name,email\n\
         3101,Benedita,Carvalho,benedita.carvalho@padaria.example\n\
         3101,Beatriz,Carvalho,beatriz.carvalho@padaria.example\n",
    );

    let text = plan_text(&before, &after);

    assert!(text.contains("error: users.csv:1:2:user_id: "), "{text}");
    assert!(text.contains("error: users.csv:2:3:user_id: "), "{text}");
}

#[test]
fn header_only_export_is_held() {
    let mut staff = String::from("user_id,first_name,last_name,email\n");
    for index in 0..40 {
        staff.push_str(&format!(
            "7{index:03},Baker{index},Forno,baker{index}@forno.example\n"
        ));
    }
    let before = Folder::new("c09-before").with("users.csv", staff);
    let after = Folder::new("c09-after").with("users.csv", "user_id,first_name,last_name,email\n");

    let plan = plan_json(&before, &after);

    assert_eq!(plan["status"], "held");
    assert_eq!(plan["counts"]["deleted"], 40);
    let reason = plan["reason"].as_str().unwrap();
    assert!(
        reason.contains("no data rows") && reason.contains("all 40 users"),
        "{reason}"
    );
    assert!(reason.contains("dsync sync approve"), "{reason}");
}

#[test]
fn header_only_export_text_says_held() {
    let mut staff = String::from("user_id,first_name,last_name,email\n");
    for index in 0..12 {
        staff.push_str(&format!(
            "8{index:03},Miller{index},Moinho,miller{index}@moinho.example\n"
        ));
    }
    let before = Folder::new("c09-text-before").with("users.csv", staff);
    let after =
        Folder::new("c09-text-after").with("users.csv", "user_id,first_name,last_name,email\r\n");

    let text = plan_text(&before, &after);

    assert!(
        text.starts_with("status: held\nreason: held because the users file has no data rows"),
        "{text}"
    );
    assert!(text.contains("12 deleted"), "{text}");
}

#[test]
fn cr_line_ends_are_rows() {
    let before = Folder::new("c10-before");
    let after = Folder::new("c10-after").with("users.csv", crew_csv(",", "\r"));

    let plan = plan_json(&before, &after);

    assert_five_created(&plan);
}

#[test]
fn email_case_and_spaces_update_once() {
    let before = Folder::new("c11-before").with("users.csv", crew_csv(",", "\n"));
    let after = Folder::new("c11-after").with(
        "users.csv",
        "user_id,first_name,last_name,email\n\
         3102,Zdeněk,Dvořák,zdenek.dvorak@padaria.example\n\
         3103,Þóra,Sigurðardóttir,thora.s@padaria.example\n\
         3104,Oisín,Mac Giolla,oisin.mg@padaria.example\n\
         3105,Ngozi,Eze,ngozi.eze@padaria.example\n\
         3101,Benedita,Carvalho,  Benedita.Carvalho@Padaria.example \n",
    );

    let plan = plan_json(&before, &after);

    assert_eq!(event_count(&plan), 1);
    let updated = events_named(&plan, "dsync.user.updated");
    assert_eq!(updated.len(), 1);
    assert_eq!(updated[0]["idp_id"], "3101");
    assert_eq!(updated[0]["email"], "Benedita.Carvalho@Padaria.example");
    assert_eq!(
        updated[0]["previous_attributes"]["email"],
        "benedita.carvalho@padaria.example"
    );
}

#[test]
fn membership_for_unknown_user_is_reported() {
    let before = Folder::new("c12-before");
    let after = Folder::new("c12-after")
        .with("users.csv", crew_csv(",", "\n"))
        .with(
            "groups.csv",
            "group_name,cost_center\nOvens,CC-310\nCounter,CC-320\n",
        )
        .with(
            "user_groups.csv",
            "group_name,user_id\nOvens,3101\nOvens,3105\nCounter,3103\nCounter,3999\n",
        );

    let plan = plan_json(&before, &after);

    let groups = events_named(&plan, "dsync.group.created");
    assert_eq!(groups.len(), 2);
    assert_eq!(groups[0]["name"], "Counter");
    assert_eq!(groups[0]["raw_attributes"]["cost_center"], "CC-320");
    assert_eq!(groups[1]["raw_attributes"]["cost_center"], "CC-310");
    assert_eq!(events_named(&plan, "dsync.group.user_added").len(), 3);
    let errors = plan["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0]["file"], "user_groups.csv");
    assert_eq!(errors[0]["row"], 4);
    assert_eq!(errors[0]["column"], "user_id");
}

#[test]
fn header_only_export_on_small_directory_is_held() {
    let staff = "user_id,first_name,last_name,email\n\
                 9001,Rui,Prado,rui.prado@quinta.example\n\
                 9002,Ema,Sousa,ema.sousa@quinta.example\n\
                 9003,Lia,Mota,lia.mota@quinta.example\n\
                 9004,Gil,Faria,gil.faria@quinta.example\n";
    let before = Folder::new("small-before").with("users.csv", staff);
    let after =
        Folder::new("small-after").with("users.csv", "user_id,first_name,last_name,email\n");

    let plan = plan_json(&before, &after);

    assert_eq!(plan["status"], "held");
    let reason = plan["reason"].as_str().unwrap();
    assert!(reason.contains("no data rows"), "{reason}");
    assert!(reason.contains("all 4 users"), "{reason}");
}

#[test]
fn row_with_other_delimiter_deletes_no_user() {
    let mut staff = String::from("user_id,first_name,last_name,email,department,state\n");
    for index in 0..12 {
        staff.push_str(&format!(
            "v{index:03},Potter{index},Olaria,potter{index}@olaria.example,Kiln,active\n"
        ));
    }
    let broken = staff.replace(
        "v003,Potter3,Olaria,potter3@olaria.example,Kiln,active",
        "v003;Potter3;Olaria;potter3@olaria.example;Kiln;active",
    );
    let before = Folder::new("delim-before").with("users.csv", staff);
    let after = Folder::new("delim-after").with("users.csv", broken);

    let plan = plan_json(&before, &after);

    assert_eq!(plan["status"], "applied");
    assert_eq!(plan["counts"]["deleted"], 0);
    // The 11 valid rows and the user kept from the unreadable row.
    assert_eq!(plan["counts"]["unchanged"], 12);
    let errors = plan["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0]["row"], 4);
    assert_eq!(errors[0]["line"], 5);
    let message = errors[0]["message"].as_str().unwrap();
    assert!(
        message.starts_with("row has 1 fields but the header has 6"),
        "{message}"
    );
    assert!(
        !message.contains("v003") && !message.contains("olaria"),
        "{message}"
    );
    let warnings = plan["warnings"].as_array().unwrap();
    assert!(
        warnings.iter().any(|warning| warning["message"]
            .as_str()
            .unwrap()
            .contains("This sync deletes no user")),
        "{warnings:?}"
    );
    assert!(events_named(&plan, "dsync.user.deleted").is_empty());
}
