# hpc-remote runner: POSIX sh, run as `/bin/sh -s` with this text on stdin, followed by
# the generated step functions and a last line that calls hpc_run. Everything is a function
# definition until that last line, so a truncated transfer runs nothing.
# Protocol (fd 3, the original stdout): lines `@@HPC <step> <word> [text]`; `old <n>` is
# followed by n raw bytes and a newline. Everything else goes to stderr or per-step logs.

hpc_init() {
	export LC_ALL=C
	umask 022
	exec 3>&1 1>&2
	W=$(mktemp -d "${TMPDIR:-/tmp}/hpc-remote.XXXXXX") || {
		printf '@@HPC - fatal mktemp\n' >&3
		exit 1
	}
	T=''
	trap 'rm -rf "$W"; if [ -n "$T" ]; then rm -f "$T"; fi' EXIT
	trap 'exit 1' HUP INT TERM
	E="$W/e"
	CH=' '
	STOP=0
}

hpc_rep() { printf '@@HPC %s %s\n' "$1" "$2" >&3; }

hpc_fail() {
	if [ -n "$2" ]; then printf '%s\n' "$2" >>"$E"; fi
	tail -n 20 "$E" | sed "s/^/@@HPC $1 err /" >&3
	printf '\n@@HPC %s failed\n' "$1" >&3
	STOP=1
}

hpc_begin() {
	: >"$E"
	if [ "$STOP" = 1 ]; then
		hpc_rep "$1" skipped
		return 1
	fi
	return 0
}

hpc_changed() {
	CH="$CH$1 "
	hpc_rep "$1" changed
}

# hpc_any "i j k": true when one of those steps changed in this run.
hpc_any() {
	for j in $1; do
		case "$CH" in *" $j "*) return 0 ;; esac
	done
	return 1
}

# hpc_meta PATH MODE USER GROUP: 0 = as wanted, 1 = differs (M holds "mode user group"),
# 2 = stat failed.
hpc_meta() {
	M=$(stat -c '%a %U %G %u %g' -- "$1" 2>>"$E") || return 2
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
		mkdir -p -- "$2" 2>>"$E" || {
			hpc_fail "$1" ''
			return 0
		}
		c=1
	fi
	hpc_meta "$2" "$3" "$4" "$5"
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
	hpc_begin "$1" || return 0
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
		cur=$(sha256sum <"$2" 2>>"$E") || {
			hpc_fail "$1" ''
			return 0
		}
		cur=${cur%% *}
	fi
	if [ "$cur" = "$6" ]; then
		hpc_meta "$2" "$3" "$4" "$5"
		r=$?
		if [ "$r" = 0 ]; then
			hpc_rep "$1" unchanged
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
		hpc_setmeta "$2" "$3" "$4" "$5" || {
			hpc_fail "$1" ''
			return 0
		}
		hpc_changed "$1"
		return 0
	fi
	if [ "$CHECK" = 1 ]; then
		if [ -e "$2" ]; then
			hpc_meta "$2" "$3" "$4" "$5"
			hpc_rep "$1" "meta $M"
			if [ "$DIFF" = 1 ] && [ "$8" = 0 ]; then hpc_old "$1" "$2"; fi
		else
			hpc_rep "$1" 'meta absent'
		fi
		hpc_rep "$1" content
		hpc_changed "$1"
		return 0
	fi
	T=$(mktemp "$d/.hpc-tmp.XXXXXX" 2>>"$E") || {
		T=''
		hpc_fail "$1" ''
		return 0
	}
	if "$7" >"$T" 2>>"$E" && hpc_setmeta "$T" "$3" "$4" "$5"; then
		if [ -n "${HPC_REMOTE_TEST_FAIL_BEFORE_RENAME-}" ] && [ "$HPC_REMOTE_TEST_FAIL_BEFORE_RENAME" = "$2" ]; then
			printf 'injected failure before rename\n' >>"$E"
		else
			sync -- "$T" 2>/dev/null
			if mv -f -- "$T" "$2" 2>>"$E"; then
				T=''
				hpc_changed "$1"
				return 0
			fi
		fi
	fi
	rm -f -- "$T"
	T=''
	hpc_fail "$1" ''
}

# hpc_cmd IDX always|onchange "TRIGGERS" ARGV...
hpc_cmd() {
	hpc_begin "$1" || return 0
	i=$1
	if [ "$2" = onchange ] && ! hpc_any "$3"; then
		hpc_rep "$i" skipped
		return 0
	fi
	shift 3
	if [ "$CHECK" = 1 ]; then
		hpc_rep "$i" 'note would run'
		hpc_changed "$i"
		return 0
	fi
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
