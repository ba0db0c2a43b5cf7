-- title: Prompts and the actions that followed
-- purpose: Every user prompt an agent reported (agent.prompt) in the period,
--   each followed by the tool calls made until the agent's next prompt in
--   the same conversation: the calls the agent reported running itself
--   (via agent: agent.tool_result, with its own decision and what our
--   policy says of the command) and the calls that went through a runner
--   (via runner: tool_call.requested whose client_meta names the
--   conversation, with the runner's final decision, the approval and the
--   call's status from tool_calls). A prompt's own row has an empty via.
--   command is the command, or the path a file tool wrote. The prompt is
--   its redacted text where the tenant stores text, else its
--   length and the text setting. A call through a runner that the agent
--   also reports shows twice, once per side, with the same agent_call_id.
--   Actions are read from @from on, with no upper bound.
-- param: from DateTime  start of the period (inclusive)
-- param: to DateTime  end of the period (exclusive)
-- findings: no
SELECT
    tenant, conversation_id, toDateTime(intDiv(p_ts, 1000000)) AS prompt_at, p_prompt_id AS prompt_id, p_text AS prompt,
    if(a_ts = 0, '', toString(toDateTime(intDiv(a_ts, 1000000)))) AS action_at,
    a_via AS via, a_tool AS tool_name, a_command AS command, a_call AS agent_call_id,
    a_agent_decision AS agent_decision, a_decision AS decision, a_reason AS reason_code,
    a_approval AS approval, a_outcome AS outcome
FROM
(
    SELECT tenant, conversation_id, p_ts, p_prompt_id, p_text,
           toUInt64(0) AS a_ts, '' AS a_via, '' AS a_tool, '' AS a_command, '' AS a_call,
           '' AS a_agent_decision, '' AS a_decision, '' AS a_reason, '' AS a_approval, '' AS a_outcome
    FROM
    (
        SELECT tenant, conversation_id, arrayJoin(ps) AS p,
               tupleElement(p, 1) AS p_ts, tupleElement(p, 2) AS p_prompt_id, tupleElement(p, 3) AS p_text
        FROM
        (
            SELECT tenant, conversation_id,
                   groupArray((toUInt64(event_time) * 1000000 + event_time_us, prompt_id,
                       if(text_mode = 'store', text, concat('(', toString(text_length), ' bytes, ', if(text_mode = '', 'not logged', text_mode), ')')))) AS ps
            FROM events FINAL
            WHERE event_type = 'agent.prompt' AND conversation_id != '' AND event_time >= @from AND event_time < @to
            GROUP BY tenant, conversation_id
        )
    )

    UNION ALL

    SELECT tenant, conversation_id, p_ts, p_prompt_id, p_text,
           a_ts, a_via, a_tool, a_command, a_call, a_agent_decision, a_decision, a_reason, a_approval, a_outcome
    FROM
    (
        -- Each prompt with the time of the next one in its conversation.
        SELECT tenant, conversation_id, arrayJoin(arrayEnumerate(ps)) AS i,
               tupleElement(ps[i], 1) AS p_ts, tupleElement(ps[i], 2) AS p_prompt_id, tupleElement(ps[i], 3) AS p_text,
               if(i < length(ps), tupleElement(ps[i + 1], 1), toUInt64(18446744073709551615)) AS p_next
        FROM
        (
            SELECT tenant, conversation_id,
                   arraySort(groupArray((toUInt64(event_time) * 1000000 + event_time_us, prompt_id,
                       if(text_mode = 'store', text, concat('(', toString(text_length), ' bytes, ', if(text_mode = '', 'not logged', text_mode), ')'))))) AS ps
            FROM events FINAL
            WHERE event_type = 'agent.prompt' AND conversation_id != '' AND event_time >= @from
            GROUP BY tenant, conversation_id
        )
    )
    ALL INNER JOIN
    (
        SELECT tenant, conversation_id, toUInt64(event_time) * 1000000 + event_time_us AS a_ts, 'agent' AS a_via,
               tool_name AS a_tool, if(command != '', command, path) AS a_command, agent_call_id AS a_call, agent_decision AS a_agent_decision,
               decision AS a_decision, reason_code AS a_reason, '' AS a_approval,
               if(success = 1, 'ok', 'failed') AS a_outcome
        FROM events FINAL
        WHERE event_type = 'agent.tool_result' AND conversation_id != '' AND event_time >= @from

        UNION ALL

        SELECT tenant, conversation_id, r_ts AS a_ts, 'runner' AS a_via, tc_tool AS a_tool, tc_command AS a_command,
               r_call AS a_call, '' AS a_agent_decision, tc_decision AS a_decision, tc_reason AS a_reason,
               tc_approval AS a_approval, tc_status AS a_outcome
        FROM
        (
            SELECT tenant, session_id, tool_call_id, conversation_id, agent_call_id AS r_call,
                   toUInt64(event_time) * 1000000 + event_time_us AS r_ts
            FROM events FINAL
            WHERE event_type = 'tool_call.requested' AND conversation_id != '' AND event_time >= @from
        ) AS req
        ANY LEFT JOIN
        (
            SELECT tenant, session_id, tool_call_id, tool_name AS tc_tool, if(command != '', command, path) AS tc_command,
                   decision AS tc_decision, reason_code AS tc_reason, approval_status AS tc_approval, status AS tc_status
            FROM tool_calls
        ) AS tc USING (tenant, session_id, tool_call_id)
    ) AS act USING (tenant, conversation_id)
    WHERE a_ts >= p_ts AND a_ts < p_next
)
ORDER BY tenant, conversation_id, p_ts, a_ts, via, agent_call_id
