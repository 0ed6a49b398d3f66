#!/bin/sh
# hpc-up-slurm-metrics: SLURM's nodes and jobs per state (and per partition) in node
# exporter's textfile format, written by hpc-up. Run by hpc-up-slurm-metrics.timer as root.
# The file is written beside its target and renamed over it, so node exporter never reads
# half of one; when sinfo or squeue fails, the old file stays and its
# slurm_metrics_last_success_timestamp_seconds grows old.
# Overridable for tests: SINFO, SQUEUE (the commands), HPC_SLURM_METRICS_DIR (the textfile
# directory), HPC_SLURM_METRICS_NOW (the timestamp).
set -eu
export LC_ALL=C
dir=${HPC_SLURM_METRICS_DIR:-/var/lib/prometheus/node-exporter}
out="$dir/slurm.prom"
tmp=$(mktemp "$dir/.slurm.prom.XXXXXX")
trap 'rm -f "$tmp"' EXIT
nodes=$(${SINFO:-sinfo} -h -N -o '%N %R %T')
jobs=$(${SQUEUE:-squeue} -h -o '%T %P')
now=${HPC_SLURM_METRICS_NOW:-$(date +%s)}
{
	printf '%s\n' "$nodes" | sed 's/^/N /'
	printf '%s\n' "$jobs" | sed 's/^/J /'
} | awk -v now="$now" '
function esc(s) { gsub(/\\/, "\\\\", s); gsub(/"/, "\\\"", s); gsub(/\n/, "\\n", s); return s }
# sinfo appends a flag to the state (idle*, down~, mixed-): the state is the word before it
function nstate(s) { s = tolower(s); sub(/[*~#!%$@^-]+$/, "", s); return s }
BEGIN {
	ns = split("allocated completing down drained draining fail idle mixed reserved unknown", NS, " ")
	js = split("completing configuring pending running suspended", JS, " ")
}
$1 == "N" && NF >= 4 {
	st = nstate($4)
	# a node is listed once per partition: counted once in slurm_nodes
	if (!($2 in seen)) { seen[$2] = 1; nodes[st]++ }
	parts[$3] = 1
	pnodes[$3 SUBSEP st]++
	next
}
$1 == "J" && NF >= 3 {
	st = tolower($2)
	jobs[st]++
	# a pending job may wait in several partitions (debug,long): counted in each
	np = split($3, jp, ",")
	for (i = 1; i <= np; i++) { pjobs[jp[i] SUBSEP st]++; jparts[jp[i]] = 1 }
	next
}
END {
	for (i = 1; i <= ns; i++) if (!(NS[i] in nodes)) nodes[NS[i]] = 0
	for (i = 1; i <= js; i++) if (!(JS[i] in jobs)) jobs[JS[i]] = 0
	for (p in parts) {
		for (i = 1; i <= ns; i++) if (!((p SUBSEP NS[i]) in pnodes)) pnodes[p SUBSEP NS[i]] = 0
		jparts[p] = 1
	}
	for (p in jparts) for (i = 1; i <= js; i++) if (!((p SUBSEP JS[i]) in pjobs)) pjobs[p SUBSEP JS[i]] = 0
	print "# HELP slurm_nodes SLURM nodes per state (each node once)."
	print "# TYPE slurm_nodes gauge"
	for (s in nodes) printf "slurm_nodes{state=\"%s\"} %d\n", esc(s), nodes[s] | "sort"
	close("sort")
	print "# HELP slurm_partition_nodes SLURM nodes per partition and state."
	print "# TYPE slurm_partition_nodes gauge"
	for (k in pnodes) { split(k, a, SUBSEP); printf "slurm_partition_nodes{partition=\"%s\",state=\"%s\"} %d\n", esc(a[1]), esc(a[2]), pnodes[k] | "sort" }
	close("sort")
	print "# HELP slurm_jobs SLURM jobs per state."
	print "# TYPE slurm_jobs gauge"
	for (s in jobs) printf "slurm_jobs{state=\"%s\"} %d\n", esc(s), jobs[s] | "sort"
	close("sort")
	print "# HELP slurm_partition_jobs SLURM jobs per partition and state."
	print "# TYPE slurm_partition_jobs gauge"
	for (k in pjobs) { split(k, a, SUBSEP); printf "slurm_partition_jobs{partition=\"%s\",state=\"%s\"} %d\n", esc(a[1]), esc(a[2]), pjobs[k] | "sort" }
	close("sort")
	print "# HELP slurm_metrics_last_success_timestamp_seconds When hpc-up-slurm-metrics last read sinfo and squeue."
	print "# TYPE slurm_metrics_last_success_timestamp_seconds gauge"
	printf "slurm_metrics_last_success_timestamp_seconds %d\n", now
}' >"$tmp"
chmod 0644 "$tmp"
mv -f "$tmp" "$out"
trap - EXIT
