-- Synthesized and dataset trajectories in one shape (dataset rows carry their file#row as
-- source_uri; synthesized ones trace to their APIs through api_ids).
with synthesized as (
    select *, null::varchar as source_uri from {{ source('raw', 'trajectories') }}
),

datasets as (
    select * exclude (is_license_allowed) from {{ source('raw', 'dataset_trajectories') }}
),

unioned as (
    select * from synthesized
    union all by name
    select * from datasets
),

final as (
    select
        trajectory_id,
        source,
        pattern,
        api_ids,
        providers,
        tools::json as tools,
        messages::json as messages,
        calls::json as calls,
        n_calls,
        n_calls_valid,
        is_valid,
        invalid_reason,
        coalesce(license, 'unknown') as license,
        generator,
        created_at,
        source_uri,
        len(list_intersect(coalesce(providers, []::varchar[]), {{ heldout_providers_list() }})) > 0 as is_heldout
    from unioned
)

select * from final
