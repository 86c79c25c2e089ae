#!/usr/bin/env bash
# pagination.sh — every list pages without gaps or repeats (docs/api.md, "Lists"):
# each list endpoint, with and without filters, is walked with ?limit= of 1, 2, 3,
# 4, 5, the exact size and 1000, following `next` as ?after=, and the pages put
# together must be the full list (asked for in one page) in the same order. Every
# page but the last holds exactly `limit` items; `next` is null on the page that
# holds the last item, and only there. The event log pages by ?since=.
. "$(dirname "$0")/lib.sh"
plan 93
lib_init
lattice_start pg1

# ---- fixtures: 12 nodes, 12 actors, 6 providers, 8 links, 6 policies -----------------------------

fail=0
for i in $(seq -w 1 12); do
	req POST /v1/nodes "{\"id\":\"n$i\",\"region\":\"r$((10#$i % 3))\",\"labels\":{\"tier\":\"t$((10#$i % 2))\"},\"cpu_capacity\":100000,\"memory_mb\":100000}"
	[ "$STATUS" = 201 ] || fail=1
done
for i in $(seq -w 1 12); do
	req POST /v1/actors "{\"id\":\"a$i\",\"module\":\"m\",\"cpu_required\":1,\"memory_required_mb\":1,\"constraints\":{\"tier\":\"t$((10#$i % 2))\"},\"replicas\":$((10#$i % 3 + 1))}"
	[ "$STATUS" = 201 ] || fail=1
done
for i in 1 2 3 4 5 6; do
	c=$([ $((i % 2)) = 0 ] && echo wasmcloud:keyvalue || echo wasmcloud:httpserver)
	req POST /v1/providers "{\"id\":\"p$i\",\"contract_id\":\"$c\",\"image\":\"img\",\"nodes\":[\"n0$i\"]}"
	[ "$STATUS" = 201 ] || fail=1
done
for i in 1 2 3 4 5 6 7 8; do
	p=$(( (i % 3) * 2 + 2 )) # p2, p4, p6: keyvalue
	req POST /v1/links "{\"id\":\"l$i\",\"actor_id\":\"a0$(( (i % 4) + 1 ))\",\"provider_id\":\"p$p\",\"contract_id\":\"wasmcloud:keyvalue\",\"link_name\":\"ln$i\"}"
	[ "$STATUS" = 201 ] || fail=1
done
for i in 1 2 3 4 5 6; do
	req POST /v1/policies "{\"policy_id\":\"pol$i\",\"selector\":{\"regions\":[\"nowhere\"]}}"
	[ "$STATUS" = 201 ] || fail=1
done
ok $fail "fixtures written: 12 nodes, 12 actors, 6 providers, 8 links, 6 policies"

# ---- walking a list --------------------------------------------------------------------------

# walk PATH LIMIT: follows the pages of PATH at ?limit=LIMIT; sets WALK_IDS (the
# ids of every page, in order), WALK_PAGES and WALK_BAD (what was wrong, or "").
walk() {
	local path=$1 lim=$2 after= sep n ids next
	WALK_IDS= WALK_PAGES=0 WALK_BAD=
	case $path in *\?*) sep='&' ;; *) sep='?' ;; esac
	while :; do
		req GET "$path${sep}limit=$lim${after:+&after=$after}"
		if [ "$STATUS" != 200 ]; then WALK_BAD="page $((WALK_PAGES + 1)): $(err)"; return; fi
		WALK_PAGES=$((WALK_PAGES + 1))
		n=$(jqr '.items | length')
		ids=$(jqr '[.items[] | (.id // .policy_id)] | join(" ")')
		next=$(jqr '.next')
		WALK_IDS="$WALK_IDS${WALK_IDS:+${ids:+ }}$ids"
		[ "$n" -le "$lim" ] || WALK_BAD="${WALK_BAD}page $WALK_PAGES has $n items; "
		[ "$next" = null ] && break
		[ "$n" = "$lim" ] || WALK_BAD="${WALK_BAD}page $WALK_PAGES has a next but $n items; "
		[ "$n" -gt 0 ] || { WALK_BAD="${WALK_BAD}an empty page with a next; "; return; }
		[ $WALK_PAGES -lt 200 ] || { WALK_BAD="${WALK_BAD}over 200 pages; "; return; }
		after=$next
	done
	# null exactly on the page with the last item: no empty page at the end
	# (unless the list is empty).
	[ "$n" -gt 0 ] || [ $WALK_PAGES = 1 ] || WALK_BAD="${WALK_BAD}the last page is empty; "
}

# check_list NAME PATH COUNT: the full list has COUNT distinct ids; walks at
# limits 1, 2, 3, 4, 5, COUNT and 1000 give it back whole.
check_list() {
	local name=$1 path=$2 count=$3 full lim want sep
	case $path in *\?*) sep='&' ;; *) sep='?' ;; esac
	req GET "$path${sep}limit=1000"
	full=$(jqr '[.items[] | (.id // .policy_id)] | join(" ")')
	is "$STATUS $(jqr '.items | length') $(jqr '[.items[] | (.id // .policy_id)] | unique | length') $(jqr .next)" \
		"200 $count $count null" "$name: the full list has $count distinct items, next null"
	for lim in 1 2 3 4 5 "$count" 1000; do
		[ "$lim" -gt 0 ] || continue
		walk "$path" "$lim"
		want=$(((count + lim - 1) / lim))
		[ "$count" = 0 ] && want=1
		is "$WALK_IDS|$WALK_PAGES|${WALK_BAD:-ok}" "$full|$want|ok" \
			"$name at limit=$lim: $want pages, the whole list once, in order"
	done
}

check_list "nodes" /v1/nodes 12
check_list "nodes ?region=r1" '/v1/nodes?region=r1' 4
check_list "nodes ?label=tier=t0" '/v1/nodes?label=tier=t0' 6
check_list "actors" /v1/actors 12
check_list "actors ?node=n02" '/v1/actors?node=n02' "$(list_ids '/v1/actors?node=n02&limit=1000' | wc -w)"
check_list "providers" /v1/providers 6
check_list "providers ?contract_id=wasmcloud:keyvalue" '/v1/providers?contract_id=wasmcloud:keyvalue' 3
check_list "links" /v1/links 8
check_list "links ?provider_id=p4" '/v1/links?provider_id=p4' 3
check_list "policies" /v1/policies 6
check_list "nodes ?region=none (empty)" '/v1/nodes?region=none' 0

# ---- the event log ----------------------------------------------------------------------------

req GET '/v1/events?since=0&limit=1000'
NEV=$(jqr '.items | length')
ALLEV=$(jqr '[.items[].seq] | map(tostring) | join(" ")')
is "$STATUS $ALLEV" "200 $(seq -s ' ' 1 "$NEV")" "the event log holds events 1..$NEV"
for lim in 1 3 7 "$NEV"; do
	since=0 seen= pages=0 bad=
	while :; do
		req GET "/v1/events?since=$since&limit=$lim"
		[ "$STATUS" = 200 ] || { bad="$(err)"; break; }
		n=$(jqr '.items | length')
		[ "$n" -le "$lim" ] || bad="a page of $n"
		[ "$n" = 0 ] && { [ "$(jqr .next)" = "$since" ] || bad="next moved on an empty page"; break; }
		pages=$((pages + 1))
		seen="$seen${seen:+ }$(jqr '[.items[].seq] | map(tostring) | join(" ")')"
		since=$(jqr .next)
		[ $pages -lt 500 ] || { bad="over 500 pages"; break; }
	done
	is "$seen|$pages|${bad:-ok}" "$ALLEV|$(((NEV + lim - 1) / lim))|ok" "events at limit=$lim: every event once, in order"
done

done_testing
