#!/bin/sh
# Bootstrap (lib/bootstrap.c): processes started as torchrun starts them
# (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT) on loopback get rank 0's
# random 128 bytes, with 1, 2 and 4 ranks and with rank 0 coming last; a
# rank that never comes, or a rank 0 that never comes, ends the others
# after DS_BOOTSTRAP_TIMEOUT with a message naming what they waited for;
# bad variables and a port in use are refused with a message. About 7 s.
. "$(dirname "$0")/lib.sh"
B=$TOP/build/tests/test_bootstrap

if [ ! -x "$B" ]; then
	skip 'torchrun-style rendezvous' 'build/tests/test_bootstrap is not built (make units)'
	exit 0
fi

# ranks W R...: start ranks R... of W on port $P in the background, each
# writing out.R and err.R; their pids in $pids.
ranks() {
	w=$1; shift
	for r in "$@"; do
		RANK=$r WORLD_SIZE=$w MASTER_ADDR=127.0.0.1 MASTER_PORT=$P "$B" rank blob 128 > out.$r 2> err.$r &
		pids="$pids $!"
	done
}

# wait_all: wait for every pid in $pids; the number that failed in $failed.
wait_all() {
	failed=0
	for p in $pids; do wait $p || failed=$((failed + 1)); done
	pids=
}

for w in 1 2 4; do
	ok "$w rank(s): every rank gets rank 0's 128 random bytes" '
		P=$("$B" port) && head -c 128 /dev/urandom > blob && pids= &&
		ranks '$w' $(seq 0 $(('$w' - 1))) && wait_all && test $failed = 0 &&
		for r in $(seq 0 $(('$w' - 1))); do cmp blob out.$r || fail "rank $r got other bytes"; done &&
		grep -qx "test_bootstrap: rank $(('$w' - 1)) of '$w', local $(('$w' - 1)) of '$w'" err.$(('$w' - 1))
	'
done

ok 'rank 0 started 2 s after the others: they retry until it listens' '
	P=$("$B" port) && head -c 128 /dev/urandom > blob && pids= &&
	ranks 3 1 2 && sleep 2 && ranks 3 0 && wait_all && test $failed = 0 &&
	cmp blob out.1 && cmp blob out.2 && cmp blob out.0
'

ok 'rank 2 of 3 missing: ranks 0 and 1 stop after DS_BOOTSTRAP_TIMEOUT=2, saying which rank they waited for' '
	P=$("$B" port) && head -c 128 /dev/urandom > blob && pids= && s=$(date +%s) &&
	export DS_BOOTSTRAP_TIMEOUT=2 && ranks 3 0 1 && wait_all && test $failed = 2 &&
	test $(($(date +%s) - s)) -le 6 || fail "took $(($(date +%s) - s)) s" &&
	grep -qx "test_bootstrap: rank 0 of 3: waited 2 s for rank 2 to connect to MASTER_PORT $P" err.0 &&
	grep -q "^test_bootstrap: rank 1 of 3: rank 0 gave up: rank 0 of 3: waited 2 s for rank 2 to connect" err.1 &&
	test ! -s out.0 && test ! -s out.1
'

ok 'rank 0 missing: rank 1 stops after DS_BOOTSTRAP_TIMEOUT=2, naming the address it could not reach' '
	P=$("$B" port) && pids= && s=$(date +%s) &&
	export DS_BOOTSTRAP_TIMEOUT=2 && ranks 2 1 && wait_all && test $failed = 1 &&
	test $(($(date +%s) - s)) -le 6 || fail "took $(($(date +%s) - s)) s" &&
	grep -qx "test_bootstrap: rank 1 of 2: no answer from rank 0 at 127.0.0.1:$P (MASTER_ADDR, MASTER_PORT) in 2 s: Connection refused" err.1
'

# bad VAR=value...: exit 1 with the message (grep pattern) $MSG on stderr.
bad() {
	rc=0
	env -u RANK -u WORLD_SIZE -u MASTER_ADDR -u MASTER_PORT -u LOCAL_RANK -u LOCAL_WORLD_SIZE "$@" \
		"$B" rank blob 128 > out 2> err || rc=$?
	test $rc = 1 || { cat err; fail "$*: exit $rc, not 1"; return 1; }
	test ! -s out && grep -qx "test_bootstrap: $MSG" err || { cat err; fail "$*: not the message"; return 1; }
}

ok 'bad variables are refused at once with a message naming the variable' '
	MSG="RANK=4 is not below WORLD_SIZE=4" bad RANK=4 WORLD_SIZE=4 MASTER_ADDR=127.0.0.1 MASTER_PORT=29500 &&
	MSG="RANK=-1 is out of range (0 to 1048576)" bad RANK=-1 WORLD_SIZE=4 &&
	MSG="MASTER_PORT='"'"'http'"'"' is not a whole number" bad RANK=1 WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=http &&
	MSG="MASTER_PORT=0 is out of range (1 to 65535)" bad RANK=1 WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=0 &&
	MSG="MASTER_ADDR is not set (the host name or address of rank 0, with WORLD_SIZE=2)" bad RANK=1 WORLD_SIZE=2 MASTER_PORT=1 &&
	MSG="MASTER_PORT is not set (the TCP port rank 0 listens on, with WORLD_SIZE=2)" bad RANK=1 WORLD_SIZE=2 MASTER_ADDR=h &&
	MSG="WORLD_SIZE is set but RANK is not (a launcher such as torchrun sets RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT)" \
		bad WORLD_SIZE=2 &&
	MSG="DS_BOOTSTRAP_TIMEOUT='"'"'-3'"'"' is not a positive number of seconds" bad DS_BOOTSTRAP_TIMEOUT=-3 RANK=0 WORLD_SIZE=1 &&
	MSG="rank 0 of 2: MASTER_ADDR '"'"'no-such-host.invalid'"'"' does not resolve (.*), so no rank could reach this one" \
		bad RANK=0 WORLD_SIZE=2 MASTER_ADDR=no-such-host.invalid MASTER_PORT=29500
'

ok 'rank 1 with an unresolvable MASTER_ADDR stops after DS_BOOTSTRAP_TIMEOUT=1, saying so' '
	MSG="rank 1 of 2: no answer from rank 0 at no-such-host.invalid:29500 (MASTER_ADDR, MASTER_PORT) in 1 s: MASTER_ADDR .no-such-host.invalid. does not resolve (.*)" \
		bad DS_BOOTSTRAP_TIMEOUT=1 RANK=1 WORLD_SIZE=2 MASTER_ADDR=no-such-host.invalid MASTER_PORT=29500
'

ok 'a MASTER_PORT already in use is refused by rank 0 at once' '
	P=$("$B" port) && pids= && export DS_BOOTSTRAP_TIMEOUT=5 && ranks 2 0 && holder=$pids &&
	i=0 && until grep -q ":$(printf %04X $P) 00000000:0000 0A" /proc/net/tcp || [ $i -ge 50 ]; do sleep 0.1; i=$((i + 1)); done &&
	s=$(date +%s) && MSG="rank 0 of 2: MASTER_PORT $P is in use (another run, or another program): pick another port" \
		bad RANK=0 WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=$P &&
	test $(($(date +%s) - s)) -le 1 || fail "took $(($(date +%s) - s)) s" &&
	kill $holder && { wait $holder || true; }
'

# ds-train started as torchrun starts it: its ranks are GPU ranks. Without
# a GPU both meet, then say why NCCL cannot run, and neither hangs; CPU
# ranks under torchrun are refused (mpirun starts those).
ok 'ds-train under torchrun: two ranks meet, then stop with the reason NCCL cannot run; device: cpu is refused' '
	P=$("$B" port) && pids= &&
	for r in 0 1; do
		RANK=$r WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=$P DS_BOOTSTRAP_TIMEOUT=20 \
			"$TOP/bin/ds-train" --init_random "$TOP/tests/data/train/tiny-qwen.json" --output_dir o$r \
			--max_steps 1 2> dserr.$r &
		pids="$pids $!"
	done && wait_all && test $failed = 2 &&
	for r in 0 1; do # (with two GPUs they get as far as the missing dataset)
		grep -q "torchrun: NCCL: rank $r of 2: \|the shards hold no samples" dserr.$r || fail "rank $r: $(cat dserr.$r)"
	done &&
	RANK=0 WORLD_SIZE=2 expect_exit 2 "$TOP/bin/ds-train" --device cpu --init_random "$TOP/tests/data/train/tiny-qwen.json" --output_dir o 2> err &&
	grep -q "device: cpu under torchrun: its ranks are GPU ranks" err
'
