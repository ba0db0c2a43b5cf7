# Maven for testenv: copies the runtime closure of a dependency-list pom
# (testenv/kafka/pom.xml, testenv/zookeeper/pom.xml) into a libs folder with
# `mvn dependency:copy-dependencies`, so Java services run from Maven Central
# jars without release tarballs. Sourced after common.sh.

# maven_libs NAME POM DEST WANT_JAR: copies POM's dependencies into DEST when
# the pom changed since the last copy (a sha256 stamp, DEST/.pom.sha256),
# into a fresh folder swapped in whole so an interrupted copy never leaves a
# half-filled DEST. WANT_JAR names a jar that must be among them.
# Returns 0 when the jars changed, 1 when they were up to date.
maven_libs() {
	local name="$1" pom="$2" dest="$3" want="$4"
	local sum stamp="$dest/.pom.sha256"
	sum="$(sha256sum "$pom" | cut -d' ' -f1)"
	if [[ -f "$stamp" && "$(cat "$stamp")" == "$sum" ]]; then
		return 1
	fi
	command -v mvn >/dev/null || apt_install maven
	step "copying the $name jars with Maven (once per pom change)"
	# Maven runs on a copy of the pom so nothing is written into the source tree.
	local build="$dest.build" log="$LOGDIR/$name-mvn.log"
	rm -rf "$build" "$dest.new"
	mkdir -p "$build"
	cp "$pom" "$build/pom.xml"
	(cd "$build" && mvn -q -B dependency:copy-dependencies -DoutputDirectory="$dest.new") >"$log" 2>&1 \
		|| fail "mvn dependency:copy-dependencies for $name" "$log"
	[[ -f "$dest.new/$want" ]] || fail "Maven did not copy $want" "$log"
	echo "$sum" >"$dest.new/.pom.sha256"
	rm -rf "$dest" "$build"
	mv "$dest.new" "$dest"
	note "$name: $(ls "$dest"/*.jar | wc -l) jars, $(du -sh "$dest" | cut -f1)"
	return 0
}
