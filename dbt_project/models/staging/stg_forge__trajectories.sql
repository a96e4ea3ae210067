with source as (
    select * from {{ source('raw', 'trajectories') }}
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
        len(list_intersect(providers, {{ heldout_providers_list() }})) > 0 as is_heldout
    from source
)

select * from final
