# hpc-remote runner: POSIX sh, run as `/bin/sh -s` with this text on stdin, followed by
# the generated step functions and a last line that calls hpc_run. Everything is a function
# definition until that last line, so a truncated transfer runs nothing.
# Protocol (fd 3, the original stdout): lines `@@HPC <step> <word> [text]`; `old <n>` is
# followed by n raw bytes and a newline. Everything else goes to stderr or per-step logs.
#
# Every program it starts costs the target a fork and an exec, which is most of a run's
# cost on the target, so: a run that finds everything in place starts two programs (one
# `stat` and one `sha256sum` for all the directories and files, see hpc_probe); the step
# log's directory is made only when a step first needs it; a file is written with one
# `install` (content, owner and mode) and one `mv`, and the files written in a row share
# one `sync` (see hpc_flush).

hpc_init() {
	export LC_ALL=C
	umask 022
	exec 3>&1 1>&2
	W=''
	E=/dev/null
	T=''
	PW=''
	trap hpc_cleanup EXIT
	# A dropped connection (the caller cancelled, or died) does not stop the program: a
	# file written and its service not yet restarted would stay so, since the next run
	# finds the file right and restarts nothing. Reports to the closed channel are lost.
	trap '' HUP PIPE
	trap 'exit 1' INT TERM
	CH=' '
	STOP=0
	PG=0
}

hpc_cleanup() {
	if [ -n "$W" ]; then rm -rf "$W"; fi
	if [ -n "$T" ]; then rm -f "$T"; fi
	for fw in $PW; do
		eval "rm -f -- \"\$T$fw\""
	done
}

# hpc_e: makes the step log $E (in a private directory, made once) before a step runs a
# program whose errors it may report.
hpc_e() {
	if [ -n "$W" ]; then return 0; fi
	W=$(mktemp -d "${TMPDIR:-/tmp}/hpc-remote.XXXXXX") || {
		W=''
		printf '@@HPC - fatal mktemp\n' >&3
		exit 1
	}
	E="$W/e"
	: >"$E"
}

hpc_rep() { printf '@@HPC %s %s\n' "$1" "$2" >&3; }

# hpc_fail IDX MESSAGE: step IDX failed (with MESSAGE and the tail of its log); the
# steps before it still finish (hpc_flush), the rest are skipped.
hpc_fail() {
	if [ -n "$W" ]; then
		if [ -n "$2" ]; then printf '%s\n' "$2" >>"$E"; fi
		tail -n 20 "$E" | sed "s/^/@@HPC $1 err /" >&3
	elif [ -n "$2" ]; then
		printf '%s\n' "$2" | sed "s/^/@@HPC $1 err /" >&3
	fi
	hpc_flush
	printf '\n@@HPC %s failed\n' "$1" >&3
	STOP=1
}

# hpc_flush: puts the files written since the last flush in place: one `sync` for all
# their temporary files, then one rename each, in step order. The file steps between them
# that found their file in place (T<i> empty) report only now. A failed rename fails its
# step, and the files after it are dropped (those steps skipped), as if each step had
# finished before the next one began. Runs before every step that is not a file step (so
# commands and services see the files), before a file step changes anything in place, and
# at the end.
hpc_flush() {
	if [ -z "$PW" ]; then return 0; fi
	set --
	for fw in $PW; do
		eval "ft=\$T$fw"
		if [ -n "$ft" ]; then set -- "$@" "$ft"; fi
	done
	sync -- "$@" 2>/dev/null
	while [ -n "$PW" ]; do
		# shellcheck disable=SC2086 # step numbers
		set -- $PW
		fw=$1
		shift
		PW="$*"
		eval "ft=\$T$fw fq=\$Q$fw"
		if [ "$STOP" = 1 ]; then
			if [ -n "$ft" ]; then rm -f -- "$ft"; fi
			hpc_rep "$fw" skipped
			continue
		elif [ -z "$ft" ]; then
			hpc_rep "$fw" unchanged
			continue
		fi
		: >"$E"
		if [ -n "${HPC_REMOTE_TEST_FAIL_BEFORE_RENAME-}" ] && [ "$HPC_REMOTE_TEST_FAIL_BEFORE_RENAME" = "$fq" ]; then
			printf 'injected failure before rename\n' >>"$E"
		elif mv -f -- "$ft" "$fq" 2>>"$E"; then
			hpc_changed "$fw"
			continue
		fi
		rm -f -- "$ft"
		tail -n 20 "$E" | sed "s/^/@@HPC $fw err /" >&3
		printf '\n@@HPC %s failed\n' "$fw" >&3
		STOP=1
	done
}

# hpc_begin IDX [f]: starts step IDX; false when it is skipped. Other than file steps (f),
# a step first puts the files written before it in place.
hpc_begin() {
	if [ "${2-}" != f ]; then hpc_flush; fi
	if [ -n "$W" ]; then : >"$E"; fi
	if [ "$STOP" = 1 ]; then
		hpc_rep "$1" skipped
		return 1
	fi
	return 0
}

# A change (outside check mode) invalidates what hpc_probe found.
hpc_changed() {
	CH="$CH$1 "
	if [ "$CHECK" != 1 ]; then PG=$((PG + 1)); fi
	hpc_rep "$1" changed
}

# hpc_probe IDX: looks at the paths of step IDX and of the directory and file steps right
# after it (K<i> = d or f, P<i> = path; up to the first step of another kind) with one
# `stat` for those that exist and one `sha256sum` for the regular files of file steps.
# Step i then finds `mode user group uid gid` in M<i> (empty when missing) and the file's
# sha256 in H<i>, valid while G<i> = PG (hpc_cached). If anything goes wrong (a path
# appeared or vanished meanwhile, an unreadable file) it records nothing, and the steps
# look for themselves.
hpc_probe() {
	ps=$1
	pe=$1
	pm=''
	set --
	while eval "pk=\${K$pe-}" && [ -n "$pk" ]; do
		eval "pp=\$P$pe"
		if [ -e "$pp" ] || [ -L "$pp" ]; then
			set -- "$@" "$pp"
			pm="$pm $pe"
		fi
		pe=$((pe + 1))
	done
	pn=$#
	po=''
	if [ "$pn" -gt 0 ]; then
		po=$(stat -c '%a %U %G %u %g' -- "$@" 2>/dev/null) || return 0
	fi
	ph=''
	set --
	pf=$ps
	while [ "$pf" -lt "$pe" ]; do
		eval "pk=\$K$pf pp=\$P$pf"
		if [ "$pk" = f ] && [ -f "$pp" ]; then
			set -- "$@" "$pp"
			ph="$ph $pf"
		fi
		pf=$((pf + 1))
	done
	pc=$#
	pt=''
	if [ "$pc" -gt 0 ]; then
		pt=$(sha256sum -- "$@" 2>/dev/null) || return 0
	fi
	pf=$ps
	while [ "$pf" -lt "$pe" ]; do
		eval "M$pf='' H$pf=''"
		pf=$((pf + 1))
	done
	# One line per path (stat's format has no name; sha256sum escapes a newline in one).
	set -f
	IFS='
'
	# shellcheck disable=SC2086
	set -- $po
	unset IFS
	if [ $# -ne "$pn" ]; then
		set +f
		return 0
	fi
	for pf in $pm; do
		eval "M$pf=\$1"
		shift
	done
	IFS='
'
	# shellcheck disable=SC2086
	set -- $pt
	unset IFS
	set +f
	if [ $# -ne "$pc" ]; then return 0; fi
	for pf in $ph; do
		pv=${1#\\}
		eval "H$pf=\${pv%% *}"
		shift
	done
	pf=$ps
	while [ "$pf" -lt "$pe" ]; do
		eval "G$pf=\$PG"
		pf=$((pf + 1))
	done
}

# hpc_cached NAME IDX: hpc_v = $NAME<IDX> as the last probe found it, probing first when
# that is no longer valid; '' when the probe failed (then no probe until the next change).
hpc_cached() {
	eval "hpc_v=\${G$2-}"
	if [ "$hpc_v" != "$PG" ] && [ "${PX-}" != "$PG" ]; then
		hpc_probe "$2"
		eval "hpc_v=\${G$2-}"
		if [ "$hpc_v" != "$PG" ]; then PX=$PG; fi
	fi
	eval "hpc_v=\${G$2-}"
	if [ "$hpc_v" = "$PG" ]; then
		eval "hpc_v=\${$1$2-}"
	else
		hpc_v=''
	fi
}

# hpc_any "i j k": true when one of those steps changed in this run.
hpc_any() {
	for j in $1; do
		case "$CH" in *" $j "*) return 0 ;; esac
	done
	return 1
}

# hpc_meta IDX PATH MODE USER GROUP: 0 = as wanted, 1 = differs (M holds "mode user
# group"), 2 = stat failed.
hpc_meta() {
	hpc_cached M "$1"
	M=$hpc_v
	if [ -z "$M" ]; then
		hpc_e
		M=$(stat -c '%a %U %G %u %g' -- "$2" 2>>"$E") || return 2
	fi
	shift
	# shellcheck disable=SC2086
	set -- "$2" "$3" "$4" $M
	M="$4 $5 $6"
	[ "$1" = "$4" ] || return 1
	[ -z "$2" ] || [ "$2" = "$5" ] || [ "$2" = "$7" ] || return 1
	[ -z "$3" ] || [ "$3" = "$6" ] || [ "$3" = "$8" ] || return 1
	return 0
}

# hpc_setmeta PATH MODE USER GROUP
hpc_setmeta() {
	hpc_e
	if [ -n "$3" ] || [ -n "$4" ]; then
		o="$3"
		if [ -n "$4" ]; then o="$o:$4"; fi
		chown -- "$o" "$1" 2>>"$E" || return 1
	fi
	chmod -- "$2" "$1" 2>>"$E"
}

# hpc_dir IDX PATH MODE USER GROUP
hpc_dir() {
	hpc_begin "$1" || return 0
	c=0
	if [ -d "$2" ]; then
		:
	elif [ -e "$2" ] || [ -L "$2" ]; then
		hpc_fail "$1" "exists and is not a directory: $2"
		return 0
	elif [ "$CHECK" = 1 ]; then
		hpc_rep "$1" 'note create directory'
		hpc_changed "$1"
		return 0
	else
		# The directory (and missing parents, as mkdir -p makes them), its owner and mode.
		hpc_e
		install -d -m "$3" ${4:+-o "$4"} ${5:+-g "$5"} -- "$2" 2>>"$E" || {
			hpc_fail "$1" ''
			return 0
		}
		hpc_changed "$1"
		return 0
	fi
	hpc_meta "$1" "$2" "$3" "$4" "$5"
	r=$?
	if [ "$r" = 2 ]; then
		hpc_fail "$1" ''
		return 0
	elif [ "$r" = 1 ]; then
		if [ "$CHECK" = 1 ]; then
			hpc_rep "$1" "meta $M"
			hpc_changed "$1"
			return 0
		fi
		hpc_setmeta "$2" "$3" "$4" "$5" || {
			hpc_fail "$1" ''
			return 0
		}
		c=1
	fi
	if [ "$c" = 1 ]; then hpc_changed "$1"; else hpc_rep "$1" unchanged; fi
}

# hpc_old IDX PATH: send the current content (check mode with diffs).
hpc_old() {
	hpc_e
	cp -- "$2" "$W/old" 2>>"$E" || return 0
	n=$(($(wc -c <"$W/old")))
	if [ "$n" -gt 262144 ]; then
		hpc_rep "$1" "oldbig $n"
		return 0
	fi
	printf '@@HPC %s old %s\n' "$1" "$n" >&3
	cat "$W/old" >&3
	printf '\n' >&3
}

# hpc_file IDX PATH MODE USER GROUP SHA256 GENERATOR SECRET(0/1)
hpc_file() {
	hpc_begin "$1" f || return 0
	for fw in $PW; do
		eval "fq=\$Q$fw"
		if [ "$fq" = "$2" ]; then
			# the same file again: the earlier content goes in place first
			hpc_flush
			if [ "$STOP" = 1 ]; then
				hpc_rep "$1" skipped
				return 0
			fi
			break
		fi
	done
	if [ -d "$2" ]; then
		hpc_fail "$1" "is a directory: $2"
		return 0
	fi
	d=${2%/*}
	if [ -z "$d" ]; then d=/; fi
	if [ ! -d "$d" ]; then
		if [ "$CHECK" = 1 ]; then
			hpc_rep "$1" 'meta absent'
			hpc_rep "$1" content
			hpc_changed "$1"
			return 0
		fi
		hpc_fail "$1" "parent directory missing: $d"
		return 0
	fi
	cur=''
	if [ -f "$2" ]; then
		hpc_cached H "$1"
		cur=$hpc_v
		if [ -z "$cur" ]; then
			hpc_e
			cur=$(sha256sum <"$2" 2>>"$E") || {
				hpc_fail "$1" ''
				return 0
			}
			cur=${cur%% *}
		fi
	fi
	if [ "$cur" = "$6" ]; then
		hpc_meta "$1" "$2" "$3" "$4" "$5"
		r=$?
		if [ "$r" = 0 ]; then
			if [ -n "$PW" ]; then
				# reported after the files written before it are in place
				eval "T$1='' Q$1=''"
				PW="$PW $1"
			else
				hpc_rep "$1" unchanged
			fi
			return 0
		elif [ "$r" = 2 ]; then
			hpc_fail "$1" ''
			return 0
		fi
		if [ "$CHECK" = 1 ]; then
			hpc_rep "$1" "meta $M"
			hpc_changed "$1"
			return 0
		fi
		hpc_flush
		if [ "$STOP" = 1 ]; then
			hpc_rep "$1" skipped
			return 0
		fi
		hpc_setmeta "$2" "$3" "$4" "$5" || {
			hpc_fail "$1" ''
			return 0
		}
		hpc_changed "$1"
		return 0
	fi
	if [ "$CHECK" = 1 ]; then
		if [ -e "$2" ]; then
			hpc_meta "$1" "$2" "$3" "$4" "$5"
			hpc_rep "$1" "meta $M"
			if [ "$DIFF" = 1 ] && [ "$8" = 0 ]; then hpc_old "$1" "$2"; fi
		else
			hpc_rep "$1" 'meta absent'
		fi
		hpc_rep "$1" content
		hpc_changed "$1"
		return 0
	fi
	# The new content in a temporary file beside the target, made by install (which removes
	# whatever has that name, creates the file exclusively with mode 0600, then sets owner
	# and mode); hpc_flush syncs it and renames it over the target.
	hpc_e
	eval "T$1=\$d/.hpc-tmp.\$\$.\$1 Q$1=\$2"
	PW="$PW $1"
	eval "ft=\$T$1"
	if "$7" | install -m "$3" ${4:+-o "$4"} ${5:+-g "$5"} /dev/stdin "$ft" 2>>"$E"; then
		return 0
	fi
	PW=${PW% "$1"}
	rm -f -- "$ft"
	hpc_fail "$1" ''
}

# hpc_cmd IDX always|onchange|missing|check|verify "TRIGGERS"|PATH|"" ARGV...
# missing: only when PATH does not exist (unchanged otherwise); check: a read-only check
# that also runs in check mode, unchanged when it succeeds; verify: likewise, but in check
# mode a failure is a change to come (the steps it verifies have not run).
hpc_cmd() {
	hpc_begin "$1" || return 0
	i=$1
	if [ "$2" = onchange ] && ! hpc_any "$3"; then
		hpc_rep "$i" skipped
		return 0
	fi
	if [ "$2" = missing ] && { [ -e "$3" ] || [ -L "$3" ]; }; then
		hpc_rep "$i" unchanged
		return 0
	fi
	if [ "$2" = check ] || [ "$2" = verify ]; then
		k=$2
		shift 3
		hpc_e
		(exec "$@") </dev/null >>"$E" 2>&1 3>&-
		r=$?
		if [ "$r" = 0 ]; then
			hpc_rep "$i" unchanged
		elif [ "$k" = verify ] && [ "$CHECK" = 1 ]; then
			hpc_rep "$i" 'note would hold after the steps before it'
			hpc_changed "$i"
		else
			hpc_fail "$i" "exit status $r"
		fi
		return 0
	fi
	shift 3
	if [ "$CHECK" = 1 ]; then
		hpc_rep "$i" 'note would run'
		hpc_changed "$i"
		return 0
	fi
	hpc_e
	(exec "$@") </dev/null >>"$E" 2>&1 3>&-
	r=$?
	if [ "$r" != 0 ]; then
		hpc_fail "$i" "exit status $r"
		return 0
	fi
	hpc_changed "$i"
}

# systemctl for a program that runs while the target boots, from a unit ordered before the
# services it starts (see `boot_program`): a start or restart is queued (--no-block), since
# waiting for a job that waits for us would deadlock; enable/disable only change the links
# (--no-reload: a manager reload per service is slow on an emulated CPU, and the queued
# start does not need it). Other verbs run as usual.
hpc_systemctl_boot() {
	case "$1" in
	start | restart | try-restart) systemctl --no-block "$@" ;;
	enable | disable) systemctl --no-reload "$@" ;;
	*) systemctl "$@" ;;
	esac
}

# hpc_sys VERB NAME: run systemctl (or the override) quietly into the step log.
hpc_sys() { "$SYSTEMCTL" "$1" "$2" </dev/null >>"$E" 2>&1 3>&-; }
hpc_sysq() { "$SYSTEMCTL" "$1" "$2" </dev/null >/dev/null 2>&1 3>&-; }

# hpc_act IDX VERB NAME: perform (or in check mode announce) a change.
hpc_act() {
	c=1
	hpc_rep "$1" "note $2"
	if [ "$CHECK" = 1 ]; then return 0; fi
	hpc_sys "$2" "$3" || {
		hpc_fail "$1" "systemctl $2 $3 failed"
		return 1
	}
}

# hpc_svc IDX NAME yes|no|- started|stopped|- "TRIGGERS"
hpc_svc() {
	hpc_begin "$1" || return 0
	hpc_e
	c=0
	case "$3" in
	yes) hpc_sysq is-enabled "$2" || hpc_act "$1" enable "$2" || return 0 ;;
	no) if hpc_sysq is-enabled "$2"; then hpc_act "$1" disable "$2" || return 0; fi ;;
	esac
	case "$4" in
	started)
		if hpc_sysq is-active "$2"; then
			if hpc_any "$5"; then hpc_act "$1" restart "$2" || return 0; fi
		else
			hpc_act "$1" start "$2" || return 0
		fi
		;;
	stopped)
		if hpc_sysq is-active "$2"; then hpc_act "$1" stop "$2" || return 0; fi
		;;
	*)
		if hpc_any "$5"; then hpc_act "$1" try-restart "$2" || return 0; fi
		;;
	esac
	if [ "$c" = 1 ]; then hpc_changed "$1"; else hpc_rep "$1" unchanged; fi
}

# hpc_mount IDX FSTAB TARGET_ESCAPED LINE yes|no TARGET
hpc_mount() {
	hpc_begin "$1" || return 0
	hpc_e
	c=0
	cur=''
	if [ -f "$2" ]; then
		cur=$(HPC_T="$3" awk '$1 !~ /^#/ && $2 == ENVIRON["HPC_T"]' "$2" 2>>"$E")
	fi
	if [ "$cur" != "$4" ]; then
		c=1
		hpc_rep "$1" "note fstab: $4"
		if [ "$CHECK" != 1 ]; then
			d=${2%/*}
			T=$(mktemp "$d/.hpc-tmp.XXXXXX" 2>>"$E") || {
				T=''
				hpc_fail "$1" ''
				return 0
			}
			if {
				if [ -f "$2" ]; then HPC_T="$3" awk '$1 ~ /^#/ || $2 != ENVIRON["HPC_T"]' "$2"; fi
				printf '%s\n' "$4"
			} >"$T" 2>>"$E" && chmod 644 "$T" 2>>"$E" && { sync -- "$T" 2>/dev/null || :; } && mv -f -- "$T" "$2" 2>>"$E"; then
				T=''
			else
				rm -f -- "$T"
				T=''
				hpc_fail "$1" ''
				return 0
			fi
		fi
	fi
	if [ "$5" = yes ] && ! HPC_T="$3" awk '$2 == ENVIRON["HPC_T"] { f = 1 } END { exit !f }' /proc/self/mounts; then
		c=1
		hpc_rep "$1" 'note mount'
		if [ "$CHECK" != 1 ]; then
			mkdir -p -- "$6" 2>>"$E" && "$MOUNT" "$6" </dev/null >>"$E" 2>&1 3>&- || {
				hpc_fail "$1" ''
				return 0
			}
		fi
	fi
	if [ "$c" = 1 ]; then hpc_changed "$1"; else hpc_rep "$1" unchanged; fi
}
