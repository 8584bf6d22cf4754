//! PostgreSQL clusters of a test's own: initdb into a temporary directory, its own port and
//! socket directory, started, crashed, promoted and removed by the test. Transaction ids and
//! snapshots are per cluster, so a test that holds a transaction open here holds back no
//! other test.

use std::path::PathBuf;
use std::process::Command;

/// A PostgreSQL cluster of the test's own, removed when dropped.
pub struct Cluster {
    dir: PathBuf,
    pub port: u16,
    bin: PathBuf,
    /// Run its commands as `postgres` (initdb refuses root).
    as_postgres: bool,
}
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

impl Cluster {
    /// A new cluster (initdb), not started.
    pub fn new() -> Cluster {
        let c = Cluster::empty();
        let data = c.data();
        c.run_pg(
            "initdb",
            &["-D", &data, "-A", "trust", "-U", "postgres", "--no-sync"],
        );
        c
    }

    /// A streaming standby of `primary` (pg_basebackup), started.
    pub fn standby_of(primary: &Cluster) -> Cluster {
        let c = Cluster::empty();
        let data = c.data();
        let from = format!("host=127.0.0.1 port={} user=postgres", primary.port);
        c.run_pg(
            "pg_basebackup",
            &["-D", &data, "-R", "-X", "stream", "-d", &from],
        );
        c.start();
        c
    }

    /// A directory and a port for a cluster.
    fn empty() -> Cluster {
        let bin = Command::new("pg_config")
            .arg("--bindir")
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
            .filter(|b| b.join("initdb").exists())
            .expect("PostgreSQL's server binaries (pg_config --bindir with initdb)");
        let dir = std::env::temp_dir().join(format!(
            "roster-pgc-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        ));
        std::fs::create_dir_all(&dir).expect("cluster directory");
        let c = Cluster {
            dir,
            port: free_port(),
            bin,
            as_postgres: running_as_root(),
        };
        if c.as_postgres {
            c.run("chown", &["-R", "postgres:postgres", &c.path()], false);
        }
        c
    }

    fn path(&self) -> String {
        self.dir.display().to_string()
    }

    fn data(&self) -> String {
        self.dir.join("data").display().to_string()
    }

    /// `program`, run as `postgres` when `as_postgres` and the test runs as root.
    fn command(&self, program: &str, as_postgres: bool) -> Command {
        if as_postgres && self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--", program]);
            c
        } else {
            Command::new(program)
        }
    }

    fn run(&self, program: &str, args: &[&str], as_postgres: bool) {
        let out = self
            .command(program, as_postgres)
            .args(args)
            .output()
            .expect("run a PostgreSQL command");
        assert!(
            out.status.success(),
            "{program} {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn run_pg(&self, tool: &str, args: &[&str]) {
        let program = self.bin.join(tool).display().to_string();
        self.run(&program, args, true);
    }

    pub fn start(&self) {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=on",
            self.port,
            self.path()
        );
        let log = self.dir.join("server.log").display().to_string();
        self.run_pg(
            "pg_ctl",
            &["-D", &self.data(), "-l", &log, "-o", &opts, "-w", "start"],
        );
    }

    /// Stops it as a crash would: no checkpoint, connections cut.
    pub fn crash(&self) {
        self.run_pg("pg_ctl", &["-D", &self.data(), "-m", "immediate", "stop"]);
    }

    pub fn promote(&self) {
        self.run_pg("pg_ctl", &["-D", &self.data(), "-w", "promote"]);
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Whatever state the test left it in: stopped, it is gone.
        let pg_ctl = self.bin.join("pg_ctl").display().to_string();
        let _ = self
            .command(&pg_ctl, true)
            .args(["-D", &self.data(), "-m", "immediate", "stop"])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
