#!/usr/bin/env escript
%% -*- erlang -*-
%%
%% frames.escript -- the driver part of the bad-input suite: hostile and
%% malformed frames sent to a real exhook-driver opened as EMQX opens it
%% (open_port({spawn, Cmd}, [{packet,4}, binary, exit_status])).
%%
%% usage: frames.escript EXHOOK-DRIVER DB POLICY TMPDIR
%% (run by tests/badinput_test.sh, which made DB and POLICY and compares the
%% store before and after).  Prints "ok    NAME" or "FAIL  NAME: why" per
%% case and "N passed, N failed" last; exit 1 on any failure.
%%
%% The table is cases/0: {Name, Input, Expect}.
%%   Input   {call, Fun, Args}   {'C', Id, exhook, Fun, Args} with a fresh Id;
%%                               Args may hold {'$raw', Bytes}: bytes spliced
%%                               into the encoding as they are (huge atoms,
%%                               lying length fields, ...)
%%           {frame, F}          F(Id) -> the frame's bytes (a term or not)
%%           {stream, Bytes}     a driver of its own on a port without
%%                               {packet,4}: one good call, then Bytes raw
%%                               (broken framing), then end of input
%%   Expect  deny                {'r', Id, {0, false}}
%%           {error, Regex}      {'e', Id, {_, _, Message, _}}, Message
%%                               matching Regex (it says what is wrong)
%%           {refused, Regex}    {'r', Id, {0, false}} and a new line in the
%%                               driver's log matching Regex: a login or ACL
%%                               check that cannot be read is refused, since
%%                               EMQX 4.1 reads an error reply as "no
%%                               opinion" and its defaults then let it in
%%           none                no answer at all (the frame has no Id that
%%                               can be read), and no other stray frame
%%           exits_cleanly       (streams) the good call answered, then the
%%                               driver exits by itself with status < 128
%% After every frame two known-good calls must be answered right: an ACL
%% check that is allowed and a login with the right password.  Then the
%% driver must still be the same process (no restart hides a crash).

-mode(compile).

-define(T_REPLY, 20000).      % ms for the answers to one case (ASan, 17 MiB frames)

main([Driver, Db, Pol, Tmp]) ->
    io:setopts([{encoding, unicode}]),
    put(pass, 0), put(fail, 0), put(next_id, 1000),
    put(env, #{driver => Driver, db => Db, pol => Pol, tmp => Tmp}),
    T0 = erlang:monotonic_time(millisecond),
    try run_all()
    catch C:E:St -> bad("frames suite aborted", io_lib:format("~p:~0tp~n~0tp", [C, E, St]))
    end,
    io:format("# cases: frames ~b~n", [length(cases())]),
    io:format("# frames: ~.1f s~n", [(erlang:monotonic_time(millisecond) - T0) / 1000]),
    io:format("~b passed, ~b failed~n", [get(pass), get(fail)]),
    halt(case get(fail) of 0 -> 0; _ -> 1 end);
main(_) ->
    io:format(standard_error, "usage: frames.escript DRIVER DB POLICY TMPDIR~n", []),
    halt(2).

env(K) -> maps:get(K, get(env)).

ok(Name) -> put(pass, get(pass) + 1), io:format("ok    ~ts~n", [Name]).
bad(Name, Why) -> put(fail, get(fail) + 1), io:format("FAIL  ~ts: ~ts~n", [Name, Why]).

show(T) ->
    S = lists:flatten(io_lib:format("~0tp", [T])),
    case length(S) > 400 of true -> lists:sublist(S, 400) ++ "..."; false -> S end.

%% ---- the broker's terms ---------------------------------------------------------

ci(Opts) ->
    G = fun(K, Def) -> maps:get(K, Opts, Def) end,
    User = G(username, <<>>),
    [{node, 'emqx@127.0.0.1'}, {clientid, G(clientid, <<"web-1">>)}, {username, User},
     {password, G(password, <<>>)}, {peerhost, G(peerhost, <<"127.0.0.1">>)},
     {sockport, 1883}, {protocol, mqtt}, {mountpoint, <<>>},
     {is_superuser, G(is_superuser, false)}, {anonymous, User =:= <<>>}].

alice() -> ci(#{username => <<"acme:alice">>}).
alice(Pw) -> ci(#{username => <<"acme:alice">>, password => Pw}).
-define(TODO, <<"tenants/acme/users/alice/todo">>).   % acme:alice may publish here

acl(CI, Action, Topic) -> [CI, Action, Topic, true, exhook].
auth(CI) -> [CI, true, exhook].

mib(N) -> binary:copy(<<"a">>, N bsl 20).

nest_list(0, Inner) -> Inner;
nest_list(N, Inner) -> nest_list(N - 1, [Inner]).
nest_tuple(0, Inner) -> Inner;
nest_tuple(N, Inner) -> nest_tuple(N - 1, {Inner}).

raw(B) -> {'$raw', B}.

%% Encode a term; {'$raw', Bytes} anywhere inside is spliced in as it is.
etf(T) -> <<131, (e(T))/binary>>.
e({'$raw', B}) -> B;
e(T) when is_tuple(T), tuple_size(T) < 256 ->
    <<104, (tuple_size(T)), (<< <<(e(X))/binary>> || X <- tuple_to_list(T) >>)/binary>>;
e([]) -> <<106>>;
e(L) when is_list(L) ->
    case has_raw(L) of
        true -> <<108, (length(L)):32, (<< <<(e(X))/binary>> || X <- L >>)/binary, 106>>;
        false -> plain(L)
    end;
e(T) -> plain(T).
plain(T) -> <<131, B/binary>> = term_to_binary(T), B.
has_raw(L) -> lists:any(fun({'$raw', _}) -> true; (X) when is_list(X) -> has_raw(X);
                           (X) when is_tuple(X) -> has_raw(tuple_to_list(X)); (_) -> false end, L).

%% A call as bytes, for frames that are cut or altered after encoding.
call_bytes(Id, Fun, Args) -> etf({'C', Id, exhook, Fun, Args}).

%% ---- the table --------------------------------------------------------------------

cases() ->
    Good = acl(alice(), publish, ?TODO),
    GoodBin = fun(Id) -> call_bytes(Id, on_client_check_acl, Good) end,
    IdLen = fun(Id) -> byte_size(e(Id)) end,
    %% the call's head {'C', Id, ...: 131, 104 5, the atom 'C', then the Id
    Head = 3 + byte_size(e('C')),
    Cut = fun(N) -> {frame, fun(Id) -> binary:part(GoodBin(Id), 0, N) end} end,
    CutAfterId = fun(Extra) ->
                         {frame, fun(Id) ->
                                         binary:part(GoodBin(Id), 0, Head + IdLen(Id) + Extra)
                                 end}
                 end,
    %% a call with the good call's arguments, Id in place, the rest F(Id)
    Term = fun(F) -> {frame, fun(Id) -> etf(F(Id)) end} end,
    Acl = fun(CI, Action, Topic) -> {call, on_client_check_acl, acl(CI, Action, Topic)} end,
    Auth = fun(CI) -> {call, on_client_authenticate, auth(CI)} end,
    Set = fun(K, V, CI) -> lists:keystore(K, 1, CI, {K, V}) end,
    User = fun(U) -> ci(#{username => U}) end,
    HugeAtom = raw(<<118, 65535:16, (binary:copy(<<"x">>, 65535))/binary>>),
    LongLatin1Atom = raw(<<100, 2000:16, (binary:copy(<<"y">>, 2000))/binary>>),
    BadUtf8Atom = raw(<<119, 2, 16#ff, 16#fe>>),
    Malformed = "malformed or truncated term",
    NotText = "action must be publish or subscribe and the topic a binary",
    WrongType = "ClientInfo has a value of the wrong type",
    Deep = 100000,
    [%% -- truncated: a good call cut short inside its frame
     {"truncated: only the version byte", Cut(1), none},
     {"truncated: inside the 'C' atom", Cut(5), none},
     {"truncated: inside the Id", CutAfterId(-1), none},
     {"truncated: right after the Id", CutAfterId(0), {error, Malformed}},
     {"truncated: inside the Module atom", CutAfterId(3), {error, Malformed}},
     {"truncated: inside ClientInfo", CutAfterId(60), {refused, Malformed}},
     {"truncated: the last byte missing",
      {frame, fun(Id) -> B = GoodBin(Id), binary:part(B, 0, byte_size(B) - 1) end},
      {refused, Malformed}},
     {"truncated: a binary whose length says 4 GiB",
      Acl(alice(), publish, raw(<<109, 16#ffffffff:32, "short">>)), {refused, Malformed}},
     {"truncated: a list whose length says 2^32-1",
      Acl(raw(<<108, 16#ffffffff:32, 106>>), publish, ?TODO), {refused, Malformed}},
     {"truncated: a tuple whose arity says 2^32-1",
      Acl(alice(), publish, raw(<<105, 16#ffffffff:32, 97, 1>>)), {refused, Malformed}},
     {"truncated: a map whose size says 2^31",
      {call, on_client_authenticate, [raw(<<116, 16#80000000:32>>), true, exhook]},
      {refused, Malformed}},
     {"truncated: a bignum Id with 255 digits, 2 given",
      {frame, fun(_) -> <<131, 104, 5, 119, 1, $C, 110, 255, 0, 1, 2>> end}, none},
     {"trailing bytes after a good call",
      {frame, fun(Id) -> <<(GoodBin(Id))/binary, 0, 0, 0>> end}, {refused, "trailing bytes"}},
     {"an empty frame", {frame, fun(_) -> <<>> end}, none},
     {"garbage that is not a term", {frame, fun(_) -> <<"GET / HTTP/1.1\r\n\r\n">> end}, none},
     {"version byte 130 instead of 131",
      {frame, fun(Id) -> <<_, R/binary>> = GoodBin(Id), <<130, R/binary>> end}, none},
     %% -- oversized: frames past the driver's 16 MiB limit are skipped
     {"oversized: a 17 MiB check_acl (its Id is readable)",
      Acl(alice(), publish, mib(17)), {refused, "frame too large"}},
     {"oversized: 17 MiB of garbage", {frame, fun(_) -> mib(17) end}, none},
     {"oversized: a compressed call that inflates past 16 MiB",
      {frame, fun(Id) ->
                      term_to_binary({'C', Id, exhook, on_client_check_acl,
                                      acl(alice(), publish, mib(20))}, [compressed])
              end}, none},
     {"compressed: zlib data that is not zlib",
      {frame, fun(_) -> <<131, 80, 0, 0, 1, 0, 1, 2, 3, 4, 5, 6, 7, 8>> end}, none},
     {"compressed: a size that lies (says 100 bytes, inflates to more)",
      {frame, fun(Id) ->
                      <<131, 80, _:32, Z/binary>> =
                          term_to_binary({'C', Id, exhook, on_client_check_acl, Good},
                                         [compressed]),
                      <<131, 80, 100:32, Z/binary>>
              end}, none},
     %% -- wrong types
     {"not a call: a 5-element list",
      Term(fun(Id) -> ['C', Id, exhook, on_client_check_acl, Good] end), none},
     {"not a call: 'c' instead of 'C'",
      Term(fun(Id) -> {c, Id, exhook, on_client_check_acl, Good} end), none},
     {"wrong type: Module an integer",
      Term(fun(Id) -> {'C', Id, 42, on_client_check_acl, Good} end),
      {error, "Module is not an atom"}},
     {"wrong type: Function a binary",
      Term(fun(Id) -> {'C', Id, exhook, <<"on_client_check_acl">>, Good} end),
      {error, "Function is not an atom"}},
     {"wrong type: Args a map", {call, on_client_check_acl, raw(e(#{a => 1}))},
      {refused, "Args is not a list"}},
     {"wrong type: Args an improper list",
      {call, on_client_check_acl, raw(<<108, 1:32, 97, 1, 97, 2>>)},
      {refused, "on_client_check_acl\\("}},
     {"wrong type: ClientInfo a map", Acl(#{username => <<"acme:alice">>}, publish, ?TODO),
      {refused, "ClientInfo is not a proplist"}},
     {"wrong type: ClientInfo an improper list",
      Auth(raw(<<108, 1:32, (e({username, <<"acme:alice">>}))/binary, 97, 7>>)),
      {refused, "ClientInfo is an improper list"}},
     {"wrong type: username an integer", Auth(Set(username, 42, alice(<<"alice-pw">>))),
      {refused, WrongType}},
     {"wrong type: username a pid", Acl(Set(username, self(), alice()), publish, ?TODO),
      {refused, WrongType}},
     {"wrong type: password a tuple", Auth(Set(password, {<<"alice-pw">>}, alice())),
      {refused, WrongType}},
     {"wrong type: username given twice", Auth([{username, <<"nobody">>} | alice(<<"alice-pw">>)]),
      {refused, "key twice"}},
     {"wrong type: topic an integer", Acl(alice(), publish, 42), {refused, NotText}},
     {"wrong type: topic a float", Acl(alice(), publish, 1.5), {refused, NotText}},
     {"wrong type: topic a reference", Acl(alice(), publish, make_ref()), {refused, NotText}},
     {"wrong type: topic a bitstring (not whole bytes)",
      Acl(alice(), publish, <<"tenants/acme/users/alice/todo", 1:3>>), {refused, NotText}},
     {"wrong type: topic a fun (never in a hook call)",
      Acl(alice(), publish, fun() -> ok end), {refused, Malformed}},
     {"wrong type: action delete", Acl(alice(), delete, ?TODO), {refused, NotText}},
     {"wrong type: action a binary", Acl(alice(), <<"publish">>, ?TODO), {refused, NotText}},
     {"wrong type: check_acl with 4 arguments",
      {call, on_client_check_acl, [alice(), publish, ?TODO, true]},
      {refused, "on_client_check_acl\\("}},
     {"wrong type: is_superuser true in ClientInfo grants nothing",
      Acl(Set(is_superuser, true, alice()), subscribe, <<"#">>), deny},
     {"wrong type: on_client_connected with ClientInfo a binary (nothing recorded)",
      {call, on_client_connected, [<<"acme:alice">>, exhook]},
      {error, "ClientInfo is not a proplist"}},
     {"wrong type: on_client_connected with clientid given twice (nothing recorded)",
      {call, on_client_connected, [[{clientid, <<"x">>} | alice()], exhook]},
      {error, "key twice"}},
     %% -- deep nesting
     {"deep nesting: topic a list 100000 deep", Acl(alice(), publish, nest_list(Deep, [])),
      {refused, Malformed}},
     {"deep nesting: ClientInfo a tuple 100000 deep",
      {call, on_client_authenticate, [nest_tuple(Deep, ok), true, exhook]}, {refused, Malformed}},
     {"deep nesting: the Id a list 100000 deep (no Id to answer)",
      {frame, fun(_) -> etf({'C', nest_list(Deep, []), exhook, on_client_check_acl, Good}) end},
      none},
     {"deep nesting: State (ignored by hooks) 100000 deep",
      {call, on_client_check_acl, [alice(), publish, ?TODO, true, nest_tuple(Deep, exhook)]},
      {refused, Malformed}},
     %% -- huge and invalid atoms
     {"huge atom: Function an atom of 65535 bytes",
      Term(fun(Id) -> {'C', Id, exhook, HugeAtom, Good} end), {error, Malformed}},
     {"huge atom: action an atom of 65535 bytes", Acl(alice(), HugeAtom, ?TODO),
      {refused, Malformed}},
     {"huge atom: a ClientInfo key of 65535 bytes",
      Auth([{HugeAtom, <<"x">>} | alice(<<"alice-pw">>)]), {refused, Malformed}},
     {"huge atom: ATOM_EXT of 2000 Latin-1 characters as node",
      Acl(Set(node, LongLatin1Atom, alice()), publish, ?TODO), {refused, Malformed}},
     {"invalid UTF-8 atom as the action", Acl(alice(), BadUtf8Atom, ?TODO), {refused, NotText}},
     {"invalid UTF-8 atom as Function",
      Term(fun(Id) -> {'C', Id, exhook, BadUtf8Atom, Good} end), {error, "^unknown function "}},
     %% -- 10 MiB binaries where short strings belong
     {"10 MiB topic", Acl(alice(), publish, mib(10)), deny},
     {"10 MiB username (check_acl)", Acl(User(mib(10)), publish, ?TODO), deny},
     {"10 MiB username (authenticate)",
      Auth(ci(#{username => mib(10), password => <<"alice-pw">>})), deny},
     {"10 MiB password", Auth(alice(mib(10))), deny},
     {"10 MiB clientid",
      Acl(ci(#{username => <<"acme:alice">>, clientid => mib(10)}), subscribe,
          <<"tenants/acme/replies/x/#">>), deny},
     %% -- invalid UTF-8
     {"invalid UTF-8 in the topic",
      Acl(alice(), publish, <<"tenants/acme/users/alice/", 16#ff, 16#fe>>), deny},
     {"overlong UTF-8 '/' (C0 AF) in the topic",
      Acl(alice(), publish, <<"tenants/acme/users/alice", 16#c0, 16#af, "todo">>), deny},
     {"invalid UTF-8 in the username (check_acl)",
      Acl(User(<<"acme:alice", 16#ff>>), publish, ?TODO), deny},
     {"invalid UTF-8 in the username (authenticate)",
      Auth(ci(#{username => <<"acme:", 16#ed, 16#a0, 16#80, "alice">>,
                password => <<"alice-pw">>})), deny},
     %% -- NUL bytes
     {"NUL in the topic", Acl(alice(), publish, <<"tenants/acme/users/alice/todo", 0, "x">>), deny},
     {"NUL in the clientid (dev-0a1b2c3d NUL)",
      Acl(ci(#{clientid => <<"dev-0a1b2c3d", 0>>}), publish, <<"devices/0a1b2c3d/up/t">>), deny},
     {"NUL in the username (check_acl)", Acl(User(<<"acme:alice", 0>>), publish, ?TODO), deny},
     {"NUL in the username (authenticate, right password)",
      Auth(ci(#{username => <<"acme:alice", 0, "x">>, password => <<"alice-pw">>})), deny},
     {"NUL in the password (right password, NUL, more)", Auth(alice(<<"alice-pw", 0, "x">>)),
      deny},
     %% -- broken framing on a raw port, then end of input
     {"stream: a header saying 256 bytes, 3 sent, then end of input",
      {stream, <<0, 0, 1, 0, 131, 104, 5>>}, exits_cleanly},
     {"stream: a header saying 4 GiB, 10 bytes sent, then end of input",
      {stream, <<16#ff, 16#ff, 16#ff, 16#ff, 0:80>>}, exits_cleanly},
     {"stream: 2 bytes of a header, then end of input", {stream, <<0, 0>>}, exits_cleanly}].

%% ---- the driver as a port --------------------------------------------------------

q(S) -> "'" ++ lists:flatten(string:replace(S, "'", "'\\''", all)) ++ "'".

%% A driver behind a small sh wrapper that records its exit status (Erlang
%% delivers none once the port is closed); its stderr goes to LOG.
start(Tag, PortOpts) ->
    Tmp = env(tmp),
    W = filename:join(Tmp, "frames-wrap.sh"),
    ok = file:write_file(W, "#!/bin/sh\n"
                            "tag=$1; shift\n"
                            "\"$@\" 2>>\"$tag.log\"\n"
                            "st=$?\n"
                            "echo $st >\"$tag.status.tmp\" &&\n"
                            "  mv \"$tag.status.tmp\" \"$tag.status\"\n"
                            "exit $st\n"),
    TagPath = filename:join(Tmp, Tag),
    file:delete(TagPath ++ ".status"),
    Cmd = "/bin/sh " ++ q(W) ++ " " ++ q(TagPath) ++ " " ++ q(env(driver)) ++
        " --db " ++ q(env(db)) ++
        " --policy " ++ q(env(pol)) ++ " --workers 2",
    Port = open_port({spawn, Cmd}, PortOpts ++ [binary, exit_status]),
    #{port => Port, status => TagPath ++ ".status", log => TagPath ++ ".log"}.

%% Close the port (end of input) and wait for the driver's exit status.
stop(#{port := Port, status := St}) ->
    catch port_close(Port),
    wait_status(St, 200).
wait_status(_, 0) -> timeout;
wait_status(St, N) ->
    case file:read_file(St) of
        {ok, B} -> list_to_integer(string:trim(binary_to_list(B)));
        _ -> timer:sleep(50), wait_status(St, N - 1)
    end.

new_id() -> I = get(next_id), put(next_id, I + 1), I.

decode(B) -> try binary_to_term(B) catch _:_ -> {undecodable_frame, B} end.

%% Frames until every Id in Want has been answered (or the time is up),
%% then whatever else comes within 100 ms.
collect(Port, Want, Ms) ->
    Deadline = erlang:monotonic_time(millisecond) + Ms,
    collect(Port, Want, Deadline, []).
collect(Port, [], _Deadline, Acc) -> lists:reverse(Acc) ++ flush(Port, 100);
collect(Port, Want, Deadline, Acc) ->
    Left = max(0, Deadline - erlang:monotonic_time(millisecond)),
    receive
        {Port, {data, B}} ->
            F = decode(B),
            Id = case F of {_, I, _} -> I; _ -> undefined end,
            collect(Port, lists:delete(Id, Want), Deadline, [F | Acc]);
        {Port, {exit_status, S}} -> lists:reverse([{driver_exited, S} | Acc])
    after Left -> lists:reverse([{no_answer_for, Want} | Acc])
    end.
flush(Port, Ms) ->
    receive {Port, {data, B}} -> [decode(B) | flush(Port, Ms)];
            {Port, {exit_status, S}} -> [{driver_exited, S}]
    after Ms -> []
    end.

%% ---- running the table -------------------------------------------------------------

run_all() ->
    Cases = cases(),
    {Streams, Framed} = lists:partition(fun({_, {stream, _}, _}) -> true; (_) -> false end, Cases),
    D = start("frames", [{packet, 4}]),
    #{port := Port} = D,
    {os_pid, Pid0} = erlang:port_info(Port, os_pid),
    Init = call(D, init, []),
    case Init of
        {r, _, {0, {Spec, _}}} when is_list(Spec) ->
            ok(io_lib:format("driver started, init answered (~b cases)", [length(Cases)]));
        _ -> bad("driver started, init answered", show(Init))
    end,
    lists:foreach(fun(C) -> run_case(D, C) end, Framed),
    {os_pid, Pid1} = case erlang:port_info(Port, os_pid) of undefined -> {os_pid, gone}; P -> P end,
    case Pid1 =:= Pid0 of
        true -> ok("the same driver process answered every case");
        false -> bad("the same driver process answered every case", show({Pid0, Pid1}))
    end,
    St = stop(D),
    case St of
        0 -> ok("end of input after all the cases: the driver exits with status 0");
        _ -> bad("end of input after all the cases: the driver exits with status 0", show(St))
    end,
    lists:foreach(fun run_stream/1, Streams).

call(#{port := Port}, Fun, Args) ->
    Id = new_id(),
    port_command(Port, etf({'C', Id, exhook, Fun, Args})),
    case collect(Port, [Id], ?T_REPLY) of
        [F | _] -> F;
        [] -> no_answer
    end.

run_case(D, {Name, _, _} = Case) ->
    T0 = erlang:monotonic_time(millisecond),
    try run_case_(D, Case)
    catch C:E:St -> bad(Name, io_lib:format("the case crashed: ~p:~0tp ~0tp", [C, E, hd(St)]))
    end,
    Ms = erlang:monotonic_time(millisecond) - T0,
    Ms > 1000 andalso io:format("#     (~b ms)~n", [Ms]).

run_case_(#{port := Port, log := Log}, {Name, Input, Expect}) ->
    LogFrom = filelib:file_size(Log),
    Id = new_id(),
    Bin = case Input of
              {call, Fun, Args} -> etf({'C', Id, exhook, Fun, Args});
              {frame, F} -> F(Id)
          end,
    port_command(Port, Bin),
    %% the known-good calls right behind it
    GA = new_id(), GL = new_id(),
    port_command(Port, etf({'C', GA, exhook, on_client_check_acl, acl(alice(), publish, ?TODO)})),
    port_command(Port, etf({'C', GL, exhook, on_client_authenticate, auth(alice(<<"alice-pw">>))})),
    Want = case Expect of none -> [GA, GL]; _ -> [Id, GA, GL] end,
    Frames = collect(Port, Want, ?T_REPLY),
    Mine = [F || F <- Frames, is_tuple(F), tuple_size(F) =:= 3, element(2, F) =:= Id],
    Others = [F || F <- Frames, not lists:member(F, Mine)],
    Problems =
        [io_lib:format("its answer ~ts, want ~ts", [show(Mine), want_text(Expect)])
         || not expect_ok(Expect, Mine)] ++
        [io_lib:format("no new line in the driver's log matches ~ts", [Re])
         || {refused, Re} <- [Expect], not log_says(Log, LogFrom, Re)] ++
        [io_lib:format("the driver then answered ~ts, want the good ACL check allowed and the good "
                       "login allowed, nothing else", [show(Others)])
         || lists:sort(Others) =/= lists:sort([{r, GA, {0, true}}, {r, GL, {0, true}}])],
    case Problems of
        [] -> ok(Name);
        _ -> bad(Name, lists:join("; ", Problems))
    end.

%% What the driver logged since From matches Re (it logs before it answers).
log_says(Log, From, Re) ->
    {ok, B} = file:read_file(Log),
    New = binary:part(B, From, byte_size(B) - From),
    re:run(New, Re) =/= nomatch.

expect_ok(none, Mine) -> Mine =:= [];
expect_ok({refused, _}, Mine) -> expect_ok(deny, Mine);
expect_ok(deny, [{r, _, {0, false}}]) -> true;
expect_ok({error, Re}, [{e, _, {_, _, Msg, _}}]) when is_binary(Msg) ->
    re:run(Msg, Re) =/= nomatch;      % bytes: a message may echo bytes that are not UTF-8
expect_ok(_, _) -> false.

want_text(none) -> "no answer (the frame has no readable Id)";
want_text(deny) -> "exactly one {'r', Id, {0, false}}";
want_text({refused, Re}) ->
    "exactly one {'r', Id, {0, false}} and a log line matching " ++ Re;
want_text({error, Re}) -> "exactly one {'e', Id, {_, _, Message, _}} with Message matching " ++ Re.

%% A driver of its own, no {packet,4}: one good call, the broken bytes, then
%% end of input.  The good call is answered and the driver ends by itself.
run_stream({Name, {stream, Bytes}, exits_cleanly}) ->
    D = start("stream", []),
    #{port := Port} = D,
    Id = new_id(),
    G = etf({'C', Id, exhook, on_client_check_acl, acl(alice(), publish, ?TODO)}),
    port_command(Port, <<(byte_size(G)):32, G/binary>>),
    Out = raw_answer(Port, <<>>, erlang:monotonic_time(millisecond) + ?T_REPLY),
    port_command(Port, Bytes),
    timer:sleep(100),
    St = stop(D),
    case {Out, St} of
        {{ok, {r, Id, {0, true}}, <<>>}, S} when is_integer(S), S < 128 -> ok(Name);
        _ -> bad(Name, io_lib:format("good call before it: ~ts; exit status after end of input: "
                                     "~ts (want the call allowed, nothing else on stdout, status "
                                     "< 128)",
                                     [show(Out), show(St)]))
    end.

raw_answer(Port, Acc, Deadline) ->
    case Acc of
        <<Len:32, T:Len/binary, Rest/binary>> ->
            Extra = receive {Port, {data, B}} -> B after 100 -> <<>> end,
            {ok, decode(T), <<Rest/binary, Extra/binary>>};
        _ ->
            Left = max(0, Deadline - erlang:monotonic_time(millisecond)),
            receive {Port, {data, B}} -> raw_answer(Port, <<Acc/binary, B/binary>>, Deadline);
                    {Port, {exit_status, S}} -> {driver_exited, S, Acc}
            after Left -> {timeout, Acc}
            end
    end.
