# bash completion for cutover.  Install: source this file, or copy it to
# /usr/share/bash-completion/completions/cutover
_cutover() {
    local cur prev cmd
    cur=${COMP_WORDS[COMP_CWORD]}
    prev=${COMP_WORDS[COMP_CWORD-1]}
    cmd=${COMP_WORDS[1]}
    local commands="run lint inventory modules doc plan show-plan apply history show report resume unlock abort vault convert --help --version"
    if [ "$COMP_CWORD" -eq 1 ]; then
        COMPREPLY=($(compgen -W "$commands" -- "$cur"))
        return
    fi
    case "$prev" in
        -i|--inventory|--journal|--known-hosts|-F|--ssh-config|--vault|-o|--output)
            COMPREPLY=($(compgen -f -- "$cur")); return ;;
        --format) COMPREPLY=($(compgen -W "text json markdown" -- "$cur")); return ;;
    esac
    local opts
    case "$cmd" in
        run|plan) opts="-i --inventory -e --extra-vars -C --check -D --diff -l --limit -t --tags --skip-tags --start-at --format -v --verbose -f --forks -k --ask-pass -b --become --become-user -K --ask-become-pass --max-output --journal --no-journal --report --known-hosts --accept-new-host-keys -F --ssh-config --vault --approve --answer --answer-stdin --non-interactive -o --output --help" ;;
        resume) opts="--mark-done --retry --accept-changed --approve --answer --answer-stdin --non-interactive --journal --report --format -v --forks -k --ask-pass -K --ask-become-pass --help" ;;
        lint) opts="-i --inventory -e --extra-vars --help" ;;
        inventory) opts="-i --list --graph --host --help" ;;
        doc) opts="--all --format --help $(cutover modules 2>/dev/null | awk '{print $1}')" ;;
        history|show|unlock|abort) opts="--journal --format --help" ;;
        vault) opts="set list rm --vault --help" ;;
        convert) opts="ansible -o --output --help" ;;
        apply|show-plan) opts="--format -v --journal --approve --non-interactive --help" ;;
    esac
    COMPREPLY=($(compgen -W "$opts" -- "$cur"))
    if [ ${#COMPREPLY[@]} -eq 0 ]; then COMPREPLY=($(compgen -f -- "$cur")); fi
}
complete -F _cutover cutover
