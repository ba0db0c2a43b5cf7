// Package fsguard keeps a workspace's protected paths as they were unless a change was approved.
//
// The sandbox mounts protected paths read-only, but a mount cannot cover a
// file that first appears during the session (`git init sub` makes
// sub/.git/config and sub/.git/hooks/; a command writes .env.local), nor a
// write through a hard link made inside the workspace (`ln .git/config x`
// and then writing x writes the mounted file's inode). So protected paths
// are judged by what the file system shows: a [Guard] takes a baseline of
// every protected path ([Guard.Snapshot]), reports what differs after each
// tool call ([Guard.Check]), puts the baseline back for changes no approved
// call allowed ([Guard.Revert]) and takes approved ones into the baseline
// ([Guard.Accept]). It runs on the host, against the directory that is
// bind-mounted at /workspace.
//
// What is protected. A path is protected when the caller's [Matcher] or
// the built-in set matches it, or when a directory above it is protected
// (the sandbox mounts a matched directory with everything beneath it). The
// built-in set is always protected, whatever the policy says, and is
// matched by a small fixed matcher (see [Builtin]); its patterns are
// anchored at the workspace root and "**" stands for any number of
// directories:
//
//	.git/hooks/**  .git/config  **/.git/hooks/**  **/.git/config
//	.github/workflows/**  .gitlab-ci.yml
//	.env  .env.*  **/.env  **/.env.*
//
// A path that is not protected but may hold protected paths beneath it (a
// .git directory, .git/hooks, .github, .github/workflows, and whatever the
// caller's [Holder] names) is guarded against becoming anything but a
// directory: a symlink there would make the protected paths beneath it
// resolve to files the agent wrote.
//
// Hard links. A protected regular file that gains links, that is another
// file than the baseline's and has more than one link, or that has a
// name in the workspace the baseline did not know, is a change of kind
// [KindHardLink]; the change lists those new names. Finding them takes a
// second walk that stats every regular file, made only while some
// protected file has more than one link. Revert removes the new names
// (never a baseline path) and, when links it could not find remain, gives
// the protected path a fresh copy of its baseline content.
//
// Reverting in place. A protected file the sandbox mounted read-only is a
// mount point inside the container; renaming a file over it on the host
// silently detaches that mount in the container (measured: the container
// then sees, and may write, the new file). So a file whose inode is still
// the baseline's is restored in place (truncated and written through a
// descriptor opened without following symlinks); only a path that holds
// another file, a symlink, a directory or nothing gets a fresh file, made
// beside it and renamed over it.
//
// The walk. Check lists directories with getdents and stats only entries
// that are protected, or that may hold protected paths. A directory whose
// device, inode and ctime are those of the last walk has the same entries
// (adding, removing or renaming one updates the ctime, which only the
// kernel sets), so its listing is reused and it costs one fstatat; a
// listing is kept only when the directory had not changed for a second
// before the walk, longer than any file system's timestamp granularity.
// The walk does not descend into .git/objects and .git/lfs (of any
// repository) or node_modules (at any depth), except where the entry is
// protected or the caller's [Holder] holds it; a .env inside node_modules
// is therefore not guarded. The walk is bounded
// ([WithMaxEntries], and 256 directory levels); a workspace beyond the
// bound is an error wrapping [ErrLimit], never "no change". Symlinks are
// never followed and nothing outside the root is read or written: every
// path is opened one component at a time with O_NOFOLLOW beneath a
// descriptor of the root.
//
// Limits, by construction. A Check of a tree that processes are changing
// sees each path at some moment during the walk, so the runner checks
// when the sandbox is quiet and again at session end. The content behind
// a protected symlink is not guarded (the link's target is). Content is
// kept for files up to [WithContentLimits]; a larger file is guarded by
// its hash only, and a change to its content cannot be reverted.
package fsguard
