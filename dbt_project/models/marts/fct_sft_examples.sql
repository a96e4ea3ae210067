-- One row per instruction-tuning conversation: valid, executed trajectories whose APIs are not
-- held out, whose license is allowed, and whose rendered text was not flagged as contaminated.
with trajectories as (
    select * from {{ ref('stg_forge__trajectories') }}
),

contaminated as (
    select distinct doc_id from {{ ref('fct_contamination') }}
),

eligible as (
    select trajectories.*
    from trajectories
    where is_valid
      and not is_heldout
      and {{ license_allowed('license') }}
      and 'traj:' || trajectory_id not in (select doc_id from contaminated)
),

final as (
    select
        trajectory_id as example_id,
        pattern,
        messages::varchar as messages,
        tools::varchar as tools,
        api_ids,
        n_calls,
        license,
        source,
        generator,
        {{ trajectory_split_key('trajectory_id') }} as split_key,
        {{ split_of(trajectory_split_key('trajectory_id')) }} as split
    from eligible
)

select * from final
