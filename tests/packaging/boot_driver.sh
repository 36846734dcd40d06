#!/bin/bash
# shellcheck disable=SC2016  # ${Field} in dpkg-query formats is for dpkg-query, not the shell
# The only unit of the systemd that test_deb_boot.py boots in systemd-nspawn (private network:
# loopback only). It does what an administrator does, as the README says it: install the package
# with apt-get, configure it against the emulator, enable --now, drop a file; upgrade to a newer
# build; remove; purge. After each step it writes what it saw to /results/facts (KEY=value, one
# line each); the test judges them. It stops at the first step that cannot go on.
# Usage: boot_driver.sh FIRST.deb UPGRADE.deb (both in /debs)
set -euo pipefail
exec 9>>/results/trace.log  # the trace apart from what the steps print (fact captures that)
BASH_XTRACEFD=9
set -x

FIRST=/debs/$1
UPGRADE=/debs/$2
FACTS=/results/facts
UNIT=procore-hotfolder
LEDGER=/var/lib/procore-hotfolder/uploads.jsonl
DROP=/srv/drop/tower-a
SECRET=deb-test-emulator-secret  # the local emulator's, made up for this test

# fact KEY COMMAND...: COMMAND's output (stdout and stderr, on one line) as KEY's value.
fact() {
    local key=$1 value
    shift
    value=$("$@" 2>&1 | tr '\n' ' ' | sed 's/ *$//') || true
    printf '%s=%s\n' "$key" "$value" >>"$FACTS"
}

# wait_for SECONDS COMMAND...: polls COMMAND until it succeeds; fails after SECONDS.
wait_for() {
    local deadline=$((SECONDS + $1))
    shift
    until "$@"; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            echo "timed out waiting for: $*"
            return 1
        fi
        sleep 0.2
    done
}

ledger_has() { [ -f "$LEDGER" ] && [ "$(wc -l <"$LEDGER")" -eq "$1" ]; }
exit_status() { "$@" >>/results/commands.log 2>&1 && echo 0 || echo $?; }
apt_get() { local log=$1; shift; exit_status sh -c "apt-get $* >/results/$log 2>&1"; }
kept() { sha256sum /etc/procore-hotfolder/config.toml /etc/procore-hotfolder/procore-client-secret \
    "$LEDGER"; }

# A Docker image's /usr/sbin/policy-rc.d (exit 101) forbids starting and stopping services;
# a server has none. Gone from the overlay, not from the host.
rm -f /usr/sbin/policy-rc.d

# --- 1. install: no network, nothing but the package ---------------------------------------
fact interfaces ls /sys/class/net
fact install_exit apt_get install.log install -y "$FIRST"
fact on_path sh -c 'command -v procore-hotfolder'
fact version procore-hotfolder --version
fact user getent passwd procore-hotfolder
fact group getent group procore-hotfolder
fact state_dir stat -c '%U:%G %a' /var/lib/procore-hotfolder
fact config_mode stat -c '%U:%G %a' /etc/procore-hotfolder/config.toml
fact config_sha256 sha256sum /etc/procore-hotfolder/config.toml
fact conffiles dpkg-query -W -f='${Conffiles}' procore-hotfolder
fact enabled_after_install systemctl is-enabled "$UNIT"
fact active_after_install systemctl is-active "$UNIT"
fact exec_start systemctl show -p ExecStart --value "$UNIT"
fact examples ls /usr/share/doc/procore-hotfolder/examples
fact byte_code sh -c 'find /usr/lib/procore-hotfolder -name "*.pyc" | wc -l'

# --- 2. the secret, the configuration, enable --now, a file dropped -------------------------
systemd-run --unit=procore-emulator --description="Procore emulator" procore-hotfolder emulator --port 8765 \
    --client-id deb-test --client-secret "$SECRET"
wait_for 30 bash -c 'echo >/dev/tcp/127.0.0.1/8765' 2>/dev/null
(umask 077 && printf '%s\n' "$SECRET" >/etc/procore-hotfolder/procore-client-secret)
cat >/etc/procore-hotfolder/config.toml <<EOF
[procore]
api_url = "http://127.0.0.1:8765"
login_url = "http://127.0.0.1:8765"
company_id = 4242
client_id = "deb-test"
client_secret_file = "procore-client-secret"

[daemon]
settle_seconds = 1

[[folders]]
path = "$DROP"
archive_dir = "$DROP/Archive"
failed_dir = "$DROP/Failed"
destination = "none"
EOF
# The emulator is on loopback: the dry-run line of override.conf.example.
mkdir -p /etc/systemd/system/$UNIT.service.d
printf '[Service]\nIPAddressDeny=\n' >/etc/systemd/system/$UNIT.service.d/dry-run.conf
install -d -o procore-hotfolder -g procore-hotfolder -m 2775 "$DROP"
fact check_exit exit_status procore-hotfolder check
# README's phf: a command as the service user, with the credential, as the unit runs it.
# systemd-run --wait needs D-Bus, which a booted server runs (this boot started the driver only).
systemctl start dbus.service
phf() {
    systemd-run --quiet --pipe --wait --collect \
        -p User=procore-hotfolder -p Group=procore-hotfolder \
        -p LoadCredential=procore-client-secret:/etc/procore-hotfolder/procore-client-secret \
        -E PROCORE_HOTFOLDER_CONFIG=/etc/procore-hotfolder/config.toml \
        "$(command -v procore-hotfolder)" "$@"
}
fact phf_check_exit exit_status phf check
fact enable_exit exit_status systemctl enable --now "$UNIT"
fact active_after_enable systemctl is-active "$UNIT"
printf 'first\n' >"$DROP/first.pdf"
wait_for 60 ledger_has 1
wait_for 30 test -f "$DROP/Archive/first.pdf"
fact ledger_first cat "$LEDGER"
fact journal_upload_lines sh -c "journalctl -u $UNIT -o cat | grep -c '\"event\": *\"upload_completed\"'"
fact invocation_before_upgrade systemctl show -p InvocationID --value "$UNIT"
fact kept_before_upgrade kept

# --- 3. upgrade to a newer build --------------------------------------------------------------
fact upgrade_exit apt_get upgrade.log install -y "$UPGRADE"
fact version_after_upgrade dpkg-query -W -f='${Version}' procore-hotfolder
fact active_after_upgrade systemctl is-active "$UNIT"
fact invocation_after_upgrade systemctl show -p InvocationID --value "$UNIT"
fact kept_after_upgrade kept
fact config_mode_after_upgrade stat -c '%U:%G %a' /etc/procore-hotfolder/config.toml
fact journal_after_upgrade ls /var/lib/procore-hotfolder
printf 'second\n' >"$DROP/second.pdf"
wait_for 60 ledger_has 2
fact ledger_after_upgrade cat "$LEDGER"

# --- 4. remove ------------------------------------------------------------------------------
fact remove_exit apt_get remove.log remove -y procore-hotfolder
fact dpkg_after_remove dpkg-query -W -f='${db:Status-Abbrev}' procore-hotfolder
fact active_after_remove systemctl is-active "$UNIT"
fact program_after_remove ls /usr/bin/procore-hotfolder
fact user_after_remove getent passwd procore-hotfolder
fact kept_after_remove kept
fact state_after_remove ls /var/lib/procore-hotfolder

# --- 5. purge -------------------------------------------------------------------------------
fact purge_exit apt_get purge.log purge -y procore-hotfolder
fact dpkg_after_purge dpkg-query -W -f='${db:Status-Abbrev}' procore-hotfolder
fact etc_after_purge ls -A /etc/procore-hotfolder
fact drop_in_after_purge ls -A /etc/systemd/system/$UNIT.service.d
fact user_after_purge getent passwd procore-hotfolder
fact group_after_purge getent group procore-hotfolder
fact statoverride_after_purge dpkg-statoverride --list /etc/procore-hotfolder/config.toml
fact state_after_purge ls /var/lib/procore-hotfolder
fact ledger_after_purge cat "$LEDGER"
fact archive_after_purge ls "$DROP/Archive"
fact purge_says grep -o 'kept /var/lib/procore-hotfolder[^.]*' /results/purge.log
echo "finished=yes" >>"$FACTS"
